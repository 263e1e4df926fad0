; Nanobenchmark: pushfd; popfd in a loop.
; expect-halt
bits 32
        mov ecx, 1000           ; iterations (the benchmark sets its own)
l:      pushfd
        popfd
        dec ecx
        jnz l
        cli
        hlt
