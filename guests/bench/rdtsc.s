; Nanobenchmark: read the time-stamp counter.
; expect-halt
bits 32
        mov ecx, 1000           ; iterations (the benchmark sets its own)
l:      rdtsc
        dec ecx
        jnz l
        xor eax, eax            ; under hw the TSC is the host's: leave no trace of it
        xor edx, edx
        cli
        hlt
