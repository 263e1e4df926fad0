; Nanobenchmark calibration: the same loop with nothing in it.
; expect-halt
bits 32
        mov ecx, 100000
l:      nop
        dec ecx
        jnz l
        cli
        hlt
