; Escape attempt: overwrite the indirect-branch lookup table (where bt keeps it),
; e.g. to send a return to an address of the guest's choice. It must fault.
; expect-fault
; expect-serial:
bits 32
        mov eax, 0x100000
        mov dword ptr [0xf0400000], eax
        mov dword ptr [0xf0400004], eax
        ret
