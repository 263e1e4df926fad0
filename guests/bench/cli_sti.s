; Nanobenchmark: cli; sti in a loop (ITER iterations, patched by the benchmark).
; expect-halt
bits 32
        mov ecx, 100000
l:      cli
        sti
        dec ecx
        jnz l
        cli
        hlt
