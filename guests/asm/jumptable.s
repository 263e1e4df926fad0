; Calls, returns and a jump table: a tiny bytecode interpreter whose opcodes dispatch
; through an indirect jmp, with a recursive factorial through call/ret.
; expect-exit: 0
; expect-serial: OK 5040\n
bits 32
        mov esi, program
        xor eax, eax
dispatch:
        movzx ebx, byte ptr [esi]
        inc esi
        jmp dword ptr [table + ebx*4]
op_push7:
        mov eax, 7
        jmp dispatch
op_fact:
        push eax
        call fact
        add esp, 4
        jmp dispatch
op_print:
        mov edi, eax
        mov al, 'O'
        call putc
        mov al, 'K'
        call putc
        mov al, ' '
        call putc
        mov eax, edi
        call print_dec
        mov al, 10
        call putc
        mov eax, edi
        jmp dispatch
op_halt:
        sub eax, 5040
        out 0xf4, al
        hlt

fact:                           ; eax = fact([esp+4]), recursive
        mov eax, [esp + 4]
        cmp eax, 1
        jbe fact_done
        dec eax
        push eax
        call fact
        add esp, 4
        imul eax, [esp + 4]
fact_done:
        ret

print_dec:                      ; print eax in decimal
        mov ecx, 10
        xor ebx, ebx
pd1:    xor edx, edx
        div ecx
        push edx
        inc ebx
        test eax, eax
        jnz pd1
pd2:    pop eax
        add al, '0'
        call putc
        dec ebx
        jnz pd2
        ret

putc:
        mov dx, 0x3f8
        out dx, al
        ret

table:  .long op_push7, op_fact, op_print, op_halt
program: .byte 0, 1, 2, 3
