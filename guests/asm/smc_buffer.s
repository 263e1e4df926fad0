; Code written to a buffer, then called; then the buffer is rewritten and called again.
; A translator that keyed translations on the address alone would run the first
; function twice (7 + 7 instead of 7 + 9).
; expect-exit: 0
; expect-serial: 7 9\n
bits 32
        mov esi, func_a
        mov edi, 0x200000
        mov ecx, func_a_end - func_a
        rep movsb
        mov eax, 0x200000
        call eax                ; eax = 7
        add al, '0'
        call putc
        mov al, ' '
        call putc
        mov esi, func_b
        mov edi, 0x200000
        mov ecx, func_b_end - func_b
        rep movsb
        mov eax, 0x200000
        call eax                ; eax = 9
        mov ebx, eax
        add al, '0'
        call putc
        mov al, 10
        call putc
        cmp ebx, 9
        setne al
        out 0xf4, al
        hlt
func_a: mov eax, 3
        add eax, 4
        ret
func_a_end:
func_b: mov eax, 4
        add eax, 5
        ret
func_b_end:
putc:   mov dx, 0x3f8
        out dx, al
        ret
