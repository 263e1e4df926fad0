; Nanobenchmark: self-modifying code. Each iteration stores the counter into the
; immediate of an instruction it then runs, so a translation of that code is stale
; every time (bt invalidates and retranslates; hw's CPU drops its decoded block).
; expect-halt
bits 32
        mov ecx, 100            ; iterations (the benchmark sets its own)
l:      mov dword ptr [patch + 1], ecx
        call patch
        cmp eax, ecx
        jne bad
        dec ecx
        jnz l
        cli
        hlt
bad:    mov al, 1
        out 0xf4, al
        hlt
        .align 64
patch:  mov eax, 0              ; b8 imm32: the immediate is at patch + 1
        ret
