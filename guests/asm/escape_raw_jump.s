; Jump to raw guest RAM: code planted in a data buffer and jumped to must still be
; translated before it runs (under bt guest RAM is not executable: a jump that
; escaped the code cache would fault with a fetch from non-executable memory).
; expect-exit: 0
; expect-serial: ok\n
bits 32
        mov dword ptr [0x300000], 0x6b6fb8      ; mov eax, 0x6b6f ('ok')
        mov byte ptr [0x300003], 0
        mov byte ptr [0x300004], 0
        mov byte ptr [0x300005], 0xc3           ; ret
        mov ebx, 0x300000
        call ebx
        mov dx, 0x3f8
        out dx, al
        mov al, ah
        out dx, al
        mov al, 10
        out dx, al
        xor al, al
        out 0xf4, al
        hlt
