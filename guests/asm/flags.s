; pushf/popf and cli/sti: the guest sees its own (virtual) IF through pushfd, popfd
; restores it, and arithmetic flags survive a popfd. Ends with cli; hlt (reason halt).
; expect-halt
; expect-serial: IF:0 1 0 1 CF:1\n
bits 32
        mov al, 'I'
        call putc
        mov al, 'F'
        call putc
        mov al, ':'
        call putc
        pushfd
        pop eax
        call print_if           ; 0 at start
        sti
        pushfd
        pop eax
        call print_if           ; 1
        cli
        pushfd                  ; save IF=0
        sti
        popfd                   ; back to IF=0
        pushfd
        pop eax
        call print_if           ; 0
        push 0x203              ; IF | CF | reserved bit 1
        popfd
        pushfd
        pop ebx
        mov eax, ebx
        call print_if           ; 1
        mov al, 'C'
        call putc
        mov al, 'F'
        call putc
        mov al, ':'
        call putc
        mov eax, ebx
        and eax, 1
        add al, '0'
        call putc
        mov al, 10
        call putc
        cli
        hlt
print_if:                       ; print bit 9 of eax, then a space
        shr eax, 9
        and eax, 1
        add al, '0'
        call putc
        mov al, ' '
        call putc
        ret
putc:   push edx
        mov dx, 0x3f8
        out dx, al
        pop edx
        ret
