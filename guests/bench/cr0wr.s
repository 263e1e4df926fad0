; Nanobenchmark: the 32-bit stand-in for cr8wr (CR8 exists only in 64-bit mode).
; Writes CR0 with TS set, as a 32-bit kernel does at a context switch for lazy FPU
; state, then clears TS again at the end.
; expect-halt
bits 32
        mov ecx, 1000           ; iterations (the benchmark sets its own)
        mov ebx, cr0
        or ebx, 8               ; CR0.TS
l:      mov cr0, ebx
        dec ecx
        jnz l
        clts
        cli
        hlt
