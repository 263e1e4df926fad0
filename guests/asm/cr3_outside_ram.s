; Bad guest state is guest behaviour: CR3 points outside guest RAM. The page
; directory reads as not present, so the next instruction fetch takes a #PF; with no
; IDT to deliver it, the run ends with reason fault (a PC would triple-fault).
; expect-fault
; mmu: both
; expect-serial: cr3\n
bits 32
        mov dx, 0x3f8
        mov al, 'c'
        out dx, al
        mov al, 'r'
        out dx, al
        mov al, '3'
        out dx, al
        mov al, 10
        out dx, al
        mov eax, 0x10000000     ; 256 MiB: past the end of guest RAM
        mov cr3, eax
        mov eax, cr0
        or eax, 0x80000000
        mov cr0, eax            ; the next fetch faults
        mov al, 1
        out 0xf4, al
        hlt
