; Nanobenchmark: cpuid leaf 0 (it overwrites ecx, so esi counts the iterations).
; expect-halt
bits 32
        mov esi, 1000           ; iterations (the benchmark sets its own)
l:      xor eax, eax
        cpuid
        dec esi
        jnz l
        cli
        hlt
