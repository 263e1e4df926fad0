; Self-modifying code, phase by phase (a hazard for any translator that caches code):
;   1. link: run a loop 100 times so its block is translated and chained to itself;
;   2. rewrite: patch the loop body's immediate (add eax, 1 -> add eax, 3);
;   3. expect: running the loop again must use the new code (a stale translation
;      would give 200 instead of 400).
; expect-exit: 0
; expect-serial: 100 400\n
bits 32
        xor eax, eax
        call body_loop          ; phase 1: eax = 100
        mov ebx, eax
        mov byte ptr [patch + 2], 3   ; phase 2: add eax, 1 -> add eax, 3
        call body_loop          ; phase 3: eax = 100 + 300
        mov ecx, eax
        mov eax, ebx
        call print_dec
        mov al, ' '
        call putc
        mov eax, ecx
        call print_dec
        mov al, 10
        call putc
        cmp ecx, 400
        setne al
        out 0xf4, al
        hlt
body_loop:
        mov edx, 100
again:
patch:  add eax, 1              ; 83 c0 01: the immediate is at patch + 2
        dec edx
        jnz again
        ret
print_dec:
        push ecx
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
        pop ecx
        ret
putc:   push edx
        mov dx, 0x3f8
        out dx, al
        pop edx
        ret
