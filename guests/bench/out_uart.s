; Nanobenchmark: write the UART scratch register (an I/O exit per iteration, no output).
; expect-halt
bits 32
        mov ecx, 1000           ; iterations (the benchmark sets its own)
        mov dx, 0x3ff
l:      out dx, al
        dec ecx
        jnz l
        cli
        hlt
