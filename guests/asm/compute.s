; Plain compute: sum of 1..1000 and the 30th Fibonacci number, checked, then printed as hex.
; expect-exit: 0
; expect-serial: 0007a314 000cb228\n
bits 32
        xor eax, eax
        mov ecx, 1000
sum:    add eax, ecx
        dec ecx
        jnz sum
        mov ebp, eax            ; 500500 = 0x7a314
        xor ebx, ebx            ; fib(0)
        mov edx, 1              ; fib(1)
        mov ecx, 30
fib:    lea esi, [ebx + edx]
        mov ebx, edx
        mov edx, esi
        loop fib                ; ebx = fib(30) = 832040 = 0xcb228
        mov eax, ebp
        call print_hex
        mov al, 0x20
        call putc
        mov eax, ebx
        call print_hex
        mov al, 10
        call putc
        xor al, al
        cmp ebp, 500500
        setne al
        cmp ebx, 832040
        setne ah
        or al, ah
        out 0xf4, al
        hlt

print_hex:                      ; print eax as 8 hex digits
        push ecx
        push edx
        mov edx, eax
        mov ecx, 8
ph:     rol edx, 4
        mov eax, edx
        and eax, 15
        mov al, byte ptr [hexdigits + eax]
        call putc
        dec ecx
        jnz ph
        pop edx
        pop ecx
        ret

putc:                           ; write al to COM1
        push edx
        push eax
        mov dx, 0x3fd
poll:   in al, dx
        test al, 0x20
        jz poll
        pop eax
        mov dx, 0x3f8
        out dx, al
        pop edx
        ret

hexdigits: .ascii "0123456789abcdef"
