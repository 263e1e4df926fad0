; Nanobenchmark: a page fault taken and fixed by the guest kernel (Adams & Agesen's
; pgfault). Each iteration reads a page that is not present; the #PF handler maps
; it; the loop then unmaps it again (PTE cleared, invlpg) for the next round.
; expect-halt
; mmu: both
bits 32
        lgdt [gdt_desc]
        .byte 0xea              ; ljmp 8:reload (CS = 8: the gate's code segment)
        .long reload
        .word 8
reload: mov ax, 16
        mov ds, ax
        mov es, ax
        mov ss, ax
        mov eax, on_pf          ; gate 14: interrupt gate to on_pf
        mov [idt + 14 * 8], ax
        mov word ptr [idt + 14 * 8 + 2], 8
        mov word ptr [idt + 14 * 8 + 4], 0x8e00
        shr eax, 16
        mov [idt + 14 * 8 + 6], ax
        lidt [idt_desc]
        mov edi, 0x10000        ; page directory at 64 KiB
        mov dword ptr [edi], 0x11003        ; 0..4 MiB: the page table at 0x11000
        mov dword ptr [edi + 4], 0x12003    ; 4..8 MiB: the page table at 0x12000
        mov dword ptr [edi + 15 * 4], 0x3c00083  ; 60..64 MiB (the stack): a 4 MiB page
        mov edi, 0x11000
        mov eax, 3
        mov ecx, 1024
fill:   mov [edi], eax          ; identity 0..4 MiB
        add eax, 0x1000
        add edi, 4
        dec ecx
        jnz fill
        mov eax, cr4
        or eax, 0x10            ; CR4.PSE
        mov cr4, eax
        mov eax, 0x10000
        mov cr3, eax
        mov eax, cr0
        or eax, 0x80000000      ; CR0.PG
        mov cr0, eax
        mov ecx, 1000           ; iterations (the benchmark sets its own)
l:      mov eax, [0x400000]     ; #PF: the handler maps the page
        mov dword ptr [0x12000], 0
        invlpg [0x400000]
        dec ecx
        jnz l
        cli
        hlt
on_pf:  mov dword ptr [0x12000], 0x200003   ; map 0x400000 -> 2 MiB
        add esp, 4              ; the error code
        iretd
.align 8
gdt:    .long 0, 0
        .long 0x0000ffff, 0x00cf9a00
        .long 0x0000ffff, 0x00cf9200
gdt_desc:
        .word 23
        .long gdt
idt_desc:
        .word 0x7f
        .long idt
        .align 8
idt:    .zero 128
