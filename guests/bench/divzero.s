; Nanobenchmark: #DE delivered through the guest's IDT to a handler that skips the
; faulting div and returns with iretd (Adams & Agesen's divzero).
; expect-halt
bits 32
        lgdt [gdt_desc]
        .byte 0xea              ; ljmp 8:reload (CS = 8: the gate's code segment)
        .long reload
        .word 8
reload: mov ax, 16
        mov ds, ax
        mov es, ax
        mov ss, ax
        mov eax, on_de          ; gate 0: interrupt gate to on_de
        mov [idt], ax
        mov word ptr [idt + 2], 8
        mov word ptr [idt + 4], 0x8e00
        shr eax, 16
        mov [idt + 6], ax
        lidt [idt_desc]
        mov ecx, 1000           ; iterations (the benchmark sets its own)
l:      xor edx, edx
        mov eax, 1
        xor ebx, ebx
        div ebx
        dec ecx
        jnz l
        cli
        hlt
on_de:  add dword ptr [esp], 2  ; skip the div (2 bytes)
        iretd
        .align 8
gdt:    .long 0, 0
        .long 0x0000ffff, 0x00cf9a00
        .long 0x0000ffff, 0x00cf9200
gdt_desc:
        .word 23
        .long gdt
idt_desc:
        .word 7
        .long idt
        .align 8
idt:    .long 0, 0
