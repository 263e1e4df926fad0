; 64-bit long mode: print on COM1, use r8-r15, a 64-bit multiply and RIP-relative data.
; expect-exit: 0
; expect-serial: Hello from long mode 0123456789abcdef\n
bits 64
        lea rsi, [rip + message]
        call puts
        mov r8, 0x0123456789abcdef
        mov r9, r8
        mov rcx, 16
hex:    rol r9, 4
        mov eax, r9d
        and eax, 15
        lea r10, [rip + digits]
        mov al, byte ptr [r10 + rax]
        call putc
        dec rcx
        jnz hex
        mov al, 10
        call putc
        mov rax, 0x100000001
        mov rbx, 0x100000001
        imul rax, rbx           ; 0x200000001 (mod 2^64)
        mov rdx, 0x200000001
        cmp rax, rdx
        jne fail
        pushfq
        pop r15
        xor al, al
        out 0xf4, al
        hlt
fail:   mov al, 1
        out 0xf4, al
        hlt
puts:   lodsb
        test al, al
        jz done
        call putc
        jmp puts
done:   ret
putc:   mov dx, 0x3f8
        out dx, al
        ret
message: .asciz "Hello from long mode "
digits: .ascii "0123456789abcdef"
