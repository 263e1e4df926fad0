; Nanobenchmark: a user -> kernel -> user round trip by sysenter/sysexit (Adams &
; Agesen's syscall, by the fast system-call instructions). The kernel sets up the
; SYSENTER MSRs, ring-3 segments where sysexit expects them (SYSENTER_CS + 16 and
; + 24) and drops to ring 3 with iretd; the user loop makes null system calls (the
; handler only sysexits), then int 0x81 asks the kernel to halt.
; expect-halt
bits 32
        lgdt [gdt_desc]
        .byte 0xea              ; ljmp 8:reload
        .long reload
        .word 8
reload: mov ax, 16
        mov ds, ax
        mov es, ax
        mov ss, ax
        mov eax, tss            ; the TSS descriptor (selector 0x28), built at run time
        mov edx, eax
        shl eax, 16
        or eax, 0x67
        mov [gdt + 0x28], eax
        mov eax, edx
        shr eax, 16
        and eax, 0xff
        and edx, 0xff000000
        or eax, edx
        or eax, 0x8900          ; present, 32-bit available TSS
        mov [gdt + 0x2c], eax
        mov dword ptr [tss + 4], kstack_top     ; ESP0
        mov dword ptr [tss + 8], 16             ; SS0
        mov ax, 0x28
        ltr ax
        xor edx, edx            ; IA32_SYSENTER_CS, _ESP, _EIP
        mov ecx, 0x174
        mov eax, 8
        wrmsr
        mov ecx, 0x175
        mov eax, kstack_top
        wrmsr
        mov ecx, 0x176
        mov eax, on_syscall
        wrmsr
        mov eax, on_halt        ; gate 0x81: DPL-3 interrupt gate
        mov edi, idt + 0x81 * 8
        call set_gate
        lidt [idt_desc]
        mov eax, ustack_top
        mov edx, user
        push 0x23               ; to ring 3: SS, ESP, EFLAGS, CS, EIP
        push eax
        pushfd
        push 0x1b
        push edx
        iretd
user:   mov esi, 1000           ; iterations (the benchmark sets its own)
l:      mov ecx, esp            ; where sysexit puts the user stack and pc
        mov edx, back
        sysenter
back:   dec esi
        jnz l
        int 0x81
set_gate:
        mov [edi], ax
        mov word ptr [edi + 2], 8
        mov word ptr [edi + 4], 0xee00
        shr eax, 16
        mov [edi + 6], ax
        ret
on_syscall:
        sysexit
on_halt:
        cli
        hlt
        .align 8
gdt:    .long 0, 0
        .long 0x0000ffff, 0x00cf9a00    ; 0x08 ring-0 code
        .long 0x0000ffff, 0x00cf9200    ; 0x10 ring-0 data
        .long 0x0000ffff, 0x00cffa00    ; 0x18 ring-3 code
        .long 0x0000ffff, 0x00cff200    ; 0x20 ring-3 data
        .long 0, 0                      ; 0x28 the TSS
gdt_desc:
        .word 47
        .long gdt
idt_desc:
        .word 0x81 * 8 + 7
        .long idt
        .align 8
idt:    .zero 1040
tss:    .zero 0x68
        .zero 4096
kstack_top:
        .zero 4096
ustack_top:
