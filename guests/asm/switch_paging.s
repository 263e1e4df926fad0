; A switch through a jump table, run with paging off, then again after the guest turns
; paging on. bt translates a bounded jump table into one of host addresses only while
; paging is off: with paging on, the guest's own load of the entry could fault and sets
; the accessed bit of the table's page, which the final memory shows (the table has a
; page of its own, mapped by a 4 KiB entry). The exit code says whether ebx is 2222.
; expect-exit: 0
; mmu: both
bits 32
        xor ebx, ebx
        call run_cases                      ; paging off
        mov edi, pt                         ; 0-4 MiB through a page table, 1:1
        mov eax, 3                          ; present, writable
fill:   mov dword ptr [edi], eax
        add eax, 0x1000
        add edi, 4
        cmp edi, pt + 4096
        jb fill
        mov eax, pt
        or eax, 3
        mov dword ptr [pd], eax
        mov edi, pd + 4                     ; 4-64 MiB: 4 MiB pages, 1:1
        mov eax, 0x400083                   ; present, writable, 4 MiB
pde:    mov dword ptr [edi], eax
        add eax, 0x400000
        add edi, 4
        cmp edi, pd + 64
        jb pde
        mov eax, cr4
        or eax, 0x10                        ; CR4.PSE
        mov cr4, eax
        mov eax, pd
        mov cr3, eax
        mov eax, cr0
        or eax, 0x80000000
        mov cr0, eax
        call run_cases                      ; paging on
        cmp ebx, 2222
        setne al
        out 0xf4, al
        hlt

run_cases:                                  ; ebx += 1111 (cases 0-3)
        xor esi, esi
rc1:    mov edx, esi
        mov eax, dispatch                   ; (through a register: bt finds the
        call eax                            ; translation made before paging)
        inc esi
        cmp esi, 4
        jb rc1
        ret
dispatch:
        cmp edx, 3
        ja none
        jmp dword ptr [table + edx*4]
case_a: add ebx, 1
        ret
case_b: add ebx, 10
        ret
case_c: add ebx, 100
        ret
case_d: add ebx, 1000
none:   ret

        .align 4096
table:  .long case_a, case_b, case_c, case_d
        .align 4096
pd:     .zero 4096
pt:     .zero 4096
