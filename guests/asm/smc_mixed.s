; A page that holds both code and data: the loop stores to a counter on the same
; 4 KiB page as its own code, 2000 times. The stores never touch code bytes, so a
; translator must let them through without invalidating the loop each time
; (the test also checks bt's invalidation count stays small: no thrashing).
; Then two functions on one page: rewriting the first must not leave the second
; stale or the first unchanged.
; expect-exit: 0
; expect-serial: 2000 5 8\n
bits 32
        mov ecx, 2000
count:  inc dword ptr [counter]
        loop count
        mov eax, [counter]
        call print_dec
        mov al, ' '
        call putc
        call f1                 ; 5
        add al, '0'
        call putc
        mov al, ' '
        call putc
        mov byte ptr [f1 + 1], 8       ; f1: mov eax, 5 -> mov eax, 8
        call f2                 ; still 2, from the same page
        cmp eax, 2
        jne fail
        call f1                 ; 8
        add al, '0'
        call putc
        mov al, 10
        call putc
        xor al, al
        out 0xf4, al
        hlt
fail:   mov al, 1
        out 0xf4, al
        hlt
f1:     mov eax, 5
        ret
f2:     mov eax, 2
        ret
print_dec:
        mov ecx, 10
        xor ebx, ebx
pd1:    xor edx, edx
        div ecx
        push edx
        inc ebx
        test eax, eax
        jnz pd1
pd2:    pop eax
        add al, '0'
        call putc
        dec ebx
        jnz pd2
        ret
putc:   push edx
        mov dx, 0x3f8
        out dx, al
        pop edx
        ret
counter: .long 0
