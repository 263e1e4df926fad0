; Bad guest state is guest behaviour: a page-table entry that points outside guest
; RAM. Paging maps 0..4 MiB 1:1 and one more page at 0x400000 to physical 0x80000000,
; past the end of RAM; the read through it is a bus error, so the run ends with reason
; fault at the read (not a traceback, not a #PF the guest could handle).
; expect-fault
; mmu: both
; expect-serial: paging on\n
; qemu: a PC reads unbacked physical memory as all ones and goes on; dbt ends the run at the bus error
bits 32
        mov edi, 0x10000        ; page directory at 64 KiB, page tables after it
        mov eax, 0x11003        ; PDE 0 -> PT at 0x11000 (present, writable)
        mov [edi], eax
        mov eax, 0x12003        ; PDE 1 -> PT at 0x12000
        mov [edi + 4], eax
        mov edi, 0x11000
        mov eax, 3
        mov ecx, 1024
fill:   mov [edi], eax          ; PT 0: identity 0..4 MiB
        add eax, 0x1000
        add edi, 4
        dec ecx
        jnz fill
        mov eax, 0x80000003     ; PT 1, entry 0: physical 0x80000000
        mov [0x12000], eax
        mov eax, 0x10000
        mov cr3, eax
        mov eax, cr0
        or eax, 0x80000000
        mov cr0, eax
        mov esi, message
print:  lodsb
        test al, al
        jz done
        mov dx, 0x3f8
        out dx, al
        jmp print
done:   mov eax, [0x400010]     ; the bus error
        mov al, 1               ; never reached
        out 0xf4, al
        hlt
message:
        .asciz "paging on\n"
