; Nanobenchmark (the paper's cr8wr): write the task-priority register through CR8,
; as a 64-bit kernel does around every interrupt-masking section.
; expect-halt
bits 64
        mov ecx, 1000           ; iterations (the benchmark sets its own)
l:      mov rax, rcx
        and eax, 15
        mov cr8, rax
        dec ecx
        jnz l
        xor eax, eax
        mov cr8, rax
        cli
        hlt
