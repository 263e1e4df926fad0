; Nanobenchmark: read the UART line status register (an I/O exit per iteration).
; expect-halt
bits 32
        mov ecx, 1000           ; iterations (the benchmark sets its own)
        mov dx, 0x3fd
l:      in al, dx
        dec ecx
        jnz l
        cli
        hlt
