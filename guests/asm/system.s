; CPUID, descriptor tables and control registers: lgdt/lidt then sgdt/sidt read back
; the same values; CR0/CR4 read, modified and restored; CR3 written and read; smsw.
; expect-exit: 0
; expect-serial: GenuineIntel gdt idt cr0 cr3 cr4 smsw\n
bits 32
        xor eax, eax
        cpuid
        mov [vendor], ebx
        mov [vendor + 4], edx
        mov [vendor + 8], ecx
        mov esi, vendor
        call puts
        lgdt [gdt_desc]
        sgdt [scratch]
        mov eax, [scratch + 2]
        cmp eax, gdt
        jne fail
        cmp word ptr [scratch], 23
        jne fail
        mov esi, s_gdt
        call puts
        lidt [idt_desc]
        sidt [scratch]
        mov eax, [scratch + 2]
        cmp eax, 0x123000
        jne fail
        cmp word ptr [scratch], 0x7ff
        jne fail
        mov esi, s_idt
        call puts
        mov eax, cr0
        mov ebx, eax
        or eax, 0x20            ; CR0.NE
        mov cr0, eax
        mov ecx, cr0
        cmp ecx, eax
        jne fail
        mov cr0, ebx
        mov esi, s_cr0
        call puts
        mov eax, 0x300000
        mov cr3, eax
        mov ecx, cr3
        cmp ecx, 0x300000
        jne fail
        mov esi, s_cr3
        call puts
        mov eax, cr4
        mov ebx, eax
        or eax, 0x80            ; CR4.PGE
        mov cr4, eax
        mov ecx, cr4
        cmp ecx, eax
        jne fail
        mov cr4, ebx
        mov esi, s_cr4
        call puts
        smsw eax
        mov ecx, cr0
        cmp ax, cx
        jne fail
        mov esi, s_smsw
        call puts
        mov al, 10
        call putc
        xor al, al
        out 0xf4, al
        hlt
fail:   mov al, 1
        out 0xf4, al
        hlt
puts:   lodsb
        test al, al
        jz puts_done
        call putc
        jmp puts
puts_done:
        ret
putc:   push edx
        mov dx, 0x3f8
        out dx, al
        pop edx
        ret
        .align 8
gdt:    .quad 0, 0x00cf9a000000ffff, 0x00cf92000000ffff
gdt_desc: .word 23
        .long gdt
idt_desc: .word 0x7ff
        .long 0x123000
scratch: .long 0, 0
vendor: .byte 0,0,0,0,0,0,0,0,0,0,0,0,0
s_gdt:  .asciz " gdt"
s_idt:  .asciz " idt"
s_cr0:  .asciz " cr0"
s_cr3:  .asciz " cr3"
s_cr4:  .asciz " cr4"
s_smsw: .asciz " smsw"
