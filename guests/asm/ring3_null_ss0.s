; From ring 3, int 0x80 reaches a ring-0 handler through a 32-bit TSS whose SS0 is a
; null selector: #TS; delivering #TS to ring 0 needs the same stack (#TS again, a
; double fault) and so does #DF: a triple fault, the same under every engine.
; (lgdt/lidt are written as bytes: keystone mis-encodes them in 32-bit mode.)
; expect-triple-fault
; expect-serial: to ring 3\n
bits 32
        mov esi, message
print:  lodsb
        test al, al
        jz go
        mov dx, 0x3f8
        out dx, al
        jmp print
go:     .byte 0x0f, 0x01, 0x15          ; lgdt [gdt_desc]
        .long gdt_desc
        .byte 0x0f, 0x01, 0x1d          ; lidt [idt_desc]
        .long idt_desc
        mov dword ptr [0x180004], 0x200000      ; ESP0 (SS0 stays 0)
        mov ax, 0x28
        ltr ax
        mov ax, 0x10
        mov ss, ax              ; (the start state's SS is no 32-bit stack segment)
        mov ax, 0x23
        mov ds, ax
        mov es, ax
        push 0x23               ; SS: ring-3 data
        push 0x1f0000           ; ESP
        push 2                  ; EFLAGS
        push 0x1b               ; CS: ring-3 code
        mov eax, user
        push eax
        iretd
user:   int 0x80
        hlt
        .align 8
gdt:    .quad 0
        .quad 0x00CF9A000000FFFF        ; 0x08 ring-0 code
        .quad 0x00CF92000000FFFF        ; 0x10 ring-0 data
        .quad 0x00CFFA000000FFFF        ; 0x18 ring-3 code
        .quad 0x00CFF2000000FFFF        ; 0x20 ring-3 data
        .quad 0x0000891800000067        ; 0x28 32-bit TSS at 0x180000, 104 bytes
gdt_desc:
        .word 47
        .long gdt
        .align 8
idt:    .zero 0x40                      ; gates 0-7: not present
        .quad 0x00108E0000080000        ; 8 #DF: interrupt gate, DPL 0, 0x08:0x100000
        .quad 0
        .quad 0x00108E0000080000        ; 10 #TS: likewise
        .zero 0x3a8                     ; gates 11-0x7f: not present
        .quad 0x0010EE0000080000        ; 0x80: interrupt gate, DPL 3, 0x08:0x100000
        .quad 0x0010EE0000080000        ; 0x81: likewise
idt_desc:
        .word 0x40f
        .long idt
message:
        .asciz "to ring 3\n"
