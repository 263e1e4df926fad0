; A triple fault: the IDT holds one gate, and it is not present. int3 looks past the
; IDT limit (#GP), the #GP gate is past the limit too (#GP again: two contributory
; faults make #DF), and the #DF gate is past the limit: a fault while delivering #DF
; shuts the processor down, so the run ends with reason triple-fault.
; expect-triple-fault
; expect-serial: going down\n
bits 32
        mov esi, message
print:  lodsb
        test al, al
        jz done
        mov dx, 0x3f8
        out dx, al
        jmp print
done:   lidt [idt_desc]
        int3
        mov al, 1               ; never reached
        out 0xf4, al
        hlt
idt_desc:
        .word 7
        .long idt
        .align 8
idt:    .long 0, 0              ; vector 0: not present
message:
        .asciz "going down\n"
