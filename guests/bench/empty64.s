; Nanobenchmark calibration, 64-bit: the same loop with nothing in it.
; expect-halt
bits 64
        mov ecx, 1000           ; iterations (the benchmark sets its own)
l:      nop
        dec ecx
        jnz l
        cli
        hlt
