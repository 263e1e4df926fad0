; Escape attempt: jump to where bt's code cache lives. The target is outside guest
; RAM, so every engine faults fetching it (bt never runs code it did not translate).
; expect-fault
; expect-serial:
bits 32
        mov eax, 0xf0600000
        jmp eax
