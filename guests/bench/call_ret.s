; Nanobenchmark: a call to a function that only returns (an indirect branch under bt).
; expect-halt
bits 32
        mov ecx, 1000           ; iterations (the benchmark sets its own)
l:      call f
        dec ecx
        jnz l
        cli
        hlt
f:      ret
