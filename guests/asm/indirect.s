; Indirect branches whose targets change under the translator's feet (bt sends every
; ret, jmp r/m and call r/m through a map of guest pc -> translation):
;   1. a call table whose entries are rewritten between rounds;
;   2. a return to an address no call pushed, in the middle of code already run;
;   3. a callee that edits its own return address on the stack;
;   4. a return target whose code is rewritten after it was returned to (SMC);
;   5. the carry flag across ret and jmp reg (the map's walk must keep the flags);
;   6. jmp reg through five handlers, many times.
; Each phase adds to ebx; the sum is printed and checked.
; expect-exit: 0
; expect-serial: 9205\n
bits 32
        xor ebx, ebx
; 1. the call table: 3 rounds of 6 calls, then two entries swapped, then one replaced
        mov edi, 3
round:  xor esi, esi
calls:  call dword ptr [table + esi*4]
        inc esi
        cmp esi, 3
        jb calls
        dec edi
        jz table_done
        mov eax, dword ptr [table]          ; swap entries 0 and 1
        xchg eax, dword ptr [table + 4]
        mov dword ptr [table], eax
        mov eax, f_four                     ; and point entry 2 elsewhere
        mov dword ptr [table + 8], eax
        jmp round
table_done:
; 2. return to an address nobody called from: into the middle of the loop below
        mov ecx, 4
middle_loop:
        add ebx, 1
mid:    add ebx, 2                          ; the ret below lands here once
        dec ecx
        jnz middle_loop
        cmp dword ptr [mid_done], 0
        jne mid_out
        mov dword ptr [mid_done], 1
        mov ecx, 3
        mov eax, mid
        push eax
        ret
mid_out:
; 3. a callee that skips the 6-byte instruction after its call
        call skip2
        add ebx, 1000                       ; 81 c3 e8 03 00 00: skipped
        jmp skip_over
skip2:  add dword ptr [esp], 6              ; return past the add above
        ret
skip_over:
; 4. SMC of a return target: returned to twice as is, then its immediate is rewritten
        mov edi, 4
smc_round:
        call ret_only
ret_site:
        add ebx, 10                         ; 83 c3 0a: the immediate is at ret_site + 2
        cmp edi, 3
        jne smc_next
        mov byte ptr [ret_site + 2], 100    ; from the third return on: add ebx, 100
smc_next:
        dec edi
        jnz smc_round
; 5. flags through ret and jmp reg
        stc
        call ret_only
        adc ebx, 0                          ; +1: CF survived the ret
        mov eax, after_jmp
        stc
        jmp eax
after_jmp:
        adc ebx, 0                          ; +1: CF survived the jmp
; 6. jmp reg through five handlers, 200 times
        mov ecx, 200
dispatch:
        mov eax, ecx
        xor edx, edx
        mov esi, 5
        div esi
        jmp dword ptr [handlers + edx*4]
h0:     add ebx, 1
        jmp next
h1:     add ebx, 2
        jmp next
h2:     add ebx, 3
        jmp next
h3:     add ebx, 4
        jmp next
h4:     add ebx, 5
next:   loop dispatch
; print ebx, exit 0 if it is what the comment says
        mov eax, ebx
        call print_dec
        mov al, 10
        call putc
        cmp ebx, 9205
        setne al
        out 0xf4, al
        hlt

f_one:  add ebx, 1
        ret
f_two:  add ebx, 20
        ret
f_three:
        add ebx, 300
        ret
f_four: add ebx, 4000
        ret
ret_only:
        ret

print_dec:
        mov ecx, 10
        xor edi, edi
pd1:    xor edx, edx
        div ecx
        push edx
        inc edi
        test eax, eax
        jnz pd1
pd2:    pop eax
        add al, '0'
        call putc
        dec edi
        jnz pd2
        ret
putc:   mov dx, 0x3f8
        out dx, al
        ret

table:  .long f_one, f_two, f_three
handlers:
        .long h0, h1, h2, h3, h4
mid_done:
        .long 0
