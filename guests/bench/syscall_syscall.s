; Nanobenchmark, 64-bit: a user -> kernel -> user round trip by syscall/sysretq (Adams &
; Agesen's syscall, by the 64-bit fast system-call instructions). The kernel loads a
; GDT in the layout STAR asks for (ring-0 code and data at STAR[47:32] = 0x08 and
; + 8; ring-3 data and 64-bit code at STAR[63:48] + 8 and + 16 = 0x18 and 0x20), a
; 64-bit TSS whose RSP0 is the kernel stack, sets EFER.SCE, STAR, LSTAR and FMASK
; (IF and DF), and drops to ring 3 with iretq; the user loop makes null system calls
; (the handler only sysretqs), then int 0x81 asks the kernel to halt.
; expect-halt
bits 64
        lgdt [rip + gdt_desc]
        mov eax, tss            ; the TSS descriptor (selector 0x28), built at run time
        mov edx, eax
        shl eax, 16
        or eax, 0x67
        mov dword ptr [gdt + 0x28], eax
        mov eax, edx
        shr eax, 16
        and eax, 0xff
        and edx, 0xff000000
        or eax, edx
        or eax, 0x8900          ; present, 64-bit available TSS (base bits 63:32 are 0)
        mov dword ptr [gdt + 0x2c], eax
        mov eax, kstack_top
        mov qword ptr [tss + 4], rax            ; RSP0
        mov ax, 0x28
        ltr ax
        mov ecx, 0xc0000080     ; EFER: keep LME and LMA, set SCE
        rdmsr
        or eax, 1
        wrmsr
        mov ecx, 0xc0000081     ; STAR: sysret base 0x10, syscall base 0x08
        xor eax, eax
        mov edx, 0x00100008
        wrmsr
        mov ecx, 0xc0000082     ; LSTAR: the kernel's entry
        mov eax, on_syscall
        xor edx, edx
        wrmsr
        mov ecx, 0xc0000084     ; FMASK: IF and DF cleared on entry
        mov eax, 0x600
        wrmsr
        mov eax, on_halt        ; gate 0x81: DPL-3 interrupt gate
        mov word ptr [idt + 0x81 * 16], ax
        mov word ptr [idt + 0x81 * 16 + 2], 8
        mov word ptr [idt + 0x81 * 16 + 4], 0xee00
        shr eax, 16
        mov word ptr [idt + 0x81 * 16 + 6], ax
        lidt [rip + idt_desc]
        mov eax, ustack_top
        mov edx, user
        push 0x1b               ; to ring 3: SS, RSP, RFLAGS, CS, RIP
        push rax
        pushfq
        push 0x23
        push rdx
        iretq
user:   mov esi, 1000           ; iterations (the benchmark sets its own)
l:      syscall                 ; (rcx and r11 are the return address and flags)
        dec esi
        jnz l
        int 0x81
on_syscall:
        .byte 0x48, 0x0f, 0x07  ; sysretq (keystone 0.9.2 does not know the mnemonic)
on_halt:
        cli
        hlt
        .align 8
gdt:    .quad 0
        .quad 0x00af9a000000ffff        ; 0x08 ring-0 code, 64-bit
        .quad 0x00cf92000000ffff        ; 0x10 ring-0 data
        .quad 0x00cff2000000ffff        ; 0x18 ring-3 data
        .quad 0x00affa000000ffff        ; 0x20 ring-3 code, 64-bit
        .quad 0, 0                      ; 0x28 the TSS (16 bytes)
gdt_desc:
        .word 55
        .quad gdt
idt_desc:
        .word 0x81 * 16 + 15
        .quad idt
        .align 16
idt:    .zero 0x820
tss:    .zero 0x68
        .zero 4096
kstack_top:
        .zero 4096
ustack_top:
