; Page faults at CPL 3: on page tables that map the first 2 MiB user-accessible (one
; large page) and nothing else, a read and then a write of 0x200000 reach the ring-0
; #PF handler with the user bit in their error codes (4: user read of a page not
; present, 6: user write) under every engine and MMU mode (under interp and bt the
; real CPU runs ring-3 code at ring 0). The handler skips each faulting instruction
; and exits with the two codes as one byte: 0x46 = 70.
; mmu: both
; expect-exit: 70
bits 64
        lgdt [rip + gdt_desc]
        mov eax, on_pf          ; gate 14 (#PF): interrupt gate, DPL 0
        mov word ptr [idt + 14 * 16], ax
        mov word ptr [idt + 14 * 16 + 2], 8
        mov word ptr [idt + 14 * 16 + 4], 0x8e00
        shr eax, 16
        mov word ptr [idt + 14 * 16 + 6], ax
        lidt [rip + idt_desc]
        mov eax, 0x170000       ; RSP0
        mov qword ptr [0x180004], rax
        mov ax, 0x28
        ltr ax
        mov dword ptr [0x1c0000], 0x1c1007      ; PML4[0] -> PDPT (present, RW, user)
        mov dword ptr [0x1c1000], 0x1c2007      ; PDPT[0] -> PD
        mov dword ptr [0x1c2000], 0x87          ; PD[0]: 0..2 MiB, a large page
        mov eax, 0x1c0000
        mov cr3, rax
        mov esp, 0x170000       ; (the boot stack at the top of RAM is not mapped now)
        push 0x1b               ; SS: ring-3 data
        push 0x160000           ; RSP
        push 2                  ; RFLAGS
        push 0x23               ; CS: ring-3 code
        lea rax, [rip + user]
        push rax
        iretq
user:   xor esi, esi            ; the codes so far
        mov ebx, 0x200000       ; not mapped
        mov al, byte ptr [rbx]  ; #PF, error code 4
        mov byte ptr [rbx], al  ; #PF, error code 6
        hlt                     ; (#GP at CPL 3: not reached)
on_pf:  pop rax                 ; the error code
        add qword ptr [rsp], 2  ; past the faulting instruction (2 bytes)
        shl rsi, 4
        or rsi, rax
        cmp rsi, 0x40
        jb back
        mov eax, esi
        out 0xf4, al
back:   iretq
        .align 8
gdt:    .quad 0
        .quad 0x00AF9A000000FFFF        ; 0x08 ring-0 code, 64-bit
        .quad 0x00CF92000000FFFF        ; 0x10 ring-0 data
        .quad 0x00CFF2000000FFFF        ; 0x18 ring-3 data
        .quad 0x00AFFA000000FFFF        ; 0x20 ring-3 code, 64-bit
        .quad 0x0000891800000067        ; 0x28 64-bit TSS at 0x180000, 104 bytes
        .quad 0
gdt_desc:
        .word 55
        .quad gdt
        .align 16
idt:    .zero 0xf0                      ; gates 0-14 (14 filled in at run time)
idt_desc:
        .word 0xef
        .quad idt
