; Nanobenchmark: cli; sti in a loop (ITER iterations, patched by the benchmark).
; expect-halt
bits 32
        mov ecx, 1000           ; iterations (the benchmark sets its own)
l:      cli
        sti
        dec ecx
        jnz l
        cli
        hlt
