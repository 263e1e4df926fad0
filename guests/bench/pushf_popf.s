; Nanobenchmark: pushfd; popfd in a loop.
; expect-halt
bits 32
        mov ecx, 100000
l:      pushfd
        popfd
        dec ecx
        jnz l
        cli
        hlt
