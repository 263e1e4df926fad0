; Nanobenchmark calibration: the same loop with nothing in it.
; expect-halt
bits 32
        mov ecx, 1000           ; iterations (the benchmark sets its own)
l:      nop
        dec ecx
        jnz l
        cli
        hlt
