; Escape attempt: jump to where bt's code cache lives. The target is outside guest
; RAM, so every engine faults fetching it (bt never runs code it did not translate).
; expect-fault
; expect-serial:
; qemu: a PC has no fault for addresses outside RAM: the jump runs unassigned memory (read as
;   zeros) until the budget ends (dbt's machine faults: nothing lies past guest RAM)
bits 32
        mov eax, 0xf0600000
        jmp eax
