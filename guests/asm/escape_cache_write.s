; Escape attempt: write into the code cache (at the monitor's address under bt).
; Every engine must fault at the store, as for any store outside guest RAM.
; expect-fault
; expect-serial: x
; qemu: a PC ignores a store to unassigned memory, so the guest goes on to exit with code 1
;   (dbt's machine faults at the store: nothing lies past guest RAM)
bits 32
        mov al, 'x'
        mov dx, 0x3f8
        out dx, al
        mov eax, 0xcccccccc
        mov dword ptr [0xf0600100], eax
        mov al, 1
        out 0xf4, al
        hlt
