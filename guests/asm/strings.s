; rep string instructions: movs, stos, cmps, scas, lods, forward and backward (DF=1),
; and a zero count. Prints one letter per check that passed.
; expect-exit: 0
; expect-serial: abcdef\n
bits 32
        ; fill 256 bytes at 0x200000 with 0x5a (rep stosb), copy them to 0x201000 (rep movsd)
        cld
        mov edi, 0x200000
        mov ecx, 256
        mov al, 0x5a
        rep stosb
        mov esi, 0x200000
        mov edi, 0x201000
        mov ecx, 64
        rep movsd dword ptr es:[edi], dword ptr [esi]   ; keystone needs the operands of movsd
        mov esi, 0x200000
        mov edi, 0x201000
        mov ecx, 256
        repe cmpsb
        jne fail
        mov al, 'a'
        call putc
        ; scan for a byte that is not there: ecx runs out
        mov edi, 0x200000
        mov ecx, 256
        mov al, 0x11
        repne scasb
        je fail
        test ecx, ecx
        jnz fail
        mov al, 'b'
        call putc
        ; plant a marker and find it
        mov byte ptr [0x200080], 0x11
        mov edi, 0x200000
        mov ecx, 256
        mov al, 0x11
        repne scasb
        jne fail
        cmp edi, 0x200081
        jne fail
        mov al, 'c'
        call putc
        ; backward copy with DF=1
        std
        mov esi, 0x2000ff
        mov edi, 0x2020ff
        mov ecx, 256
        rep movsb
        cld
        cmp byte ptr [0x202080], 0x11
        jne fail
        mov al, 'd'
        call putc
        ; zero count does nothing
        mov edi, 0x203000
        xor ecx, ecx
        mov al, 0x77
        rep stosb
        cmp byte ptr [0x203000], 0
        jne fail
        mov al, 'e'
        call putc
        ; lodsd sums
        mov esi, 0x201000
        mov ecx, 4
        xor ebx, ebx
sumloop: lodsd
        add ebx, eax
        loop sumloop
        cmp ebx, 0x69696968
        jne fail
        mov al, 'f'
        call putc
        mov al, 10
        call putc
        xor al, al
        out 0xf4, al
        hlt
fail:   mov al, 1
        out 0xf4, al
        hlt
putc:   mov dx, 0x3f8
        out dx, al
        ret
