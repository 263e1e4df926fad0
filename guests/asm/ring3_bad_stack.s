; From ring 3, int 0x80 reaches a ring-0 handler through a TSS whose RSP0 lies outside
; guest RAM: pushing the frame fails (#SS), and so does delivering #SS and then #DF to
; ring 0 on that stack: a triple fault, the same under every engine (a bad TSS is a
; guest fault, never a monitor error).
; expect-triple-fault
; expect-serial: to ring 3\n
bits 64
        lea rsi, [rip + message]
print:  lodsb
        test al, al
        jz go
        mov dx, 0x3f8
        out dx, al
        jmp print
go:     lgdt [rip + gdt_desc]
        lidt [rip + idt_desc]
        mov rax, 0x40000000     ; RSP0: past the end of guest RAM
        mov qword ptr [0x180004], rax
        mov ax, 0x28
        ltr ax
        push 0x1b               ; SS: ring-3 data
        push 0x200000           ; RSP
        push 2                  ; RFLAGS
        push 0x23               ; CS: ring-3 code
        lea rax, [rip + user]
        push rax
        iretq
user:   int 0x80
        hlt
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
idt:    .zero 0x80                      ; gates 0-7: not present
        .quad 0x00108E0000080000        ; 8 #DF: interrupt gate, DPL 0, 0x08:0x100000
        .quad 0
        .zero 0x30                      ; gates 9-11: not present
        .quad 0x00108E0000080000        ; 12 #SS: likewise
        .quad 0
        .zero 0x730                     ; gates 13-0x7f: not present
        .quad 0x0010EE0000080000        ; 0x80: interrupt gate, DPL 3, 0x08:0x100000
        .quad 0
idt_desc:
        .word 0x80f
        .quad idt
message:
        .asciz "to ring 3\n"
