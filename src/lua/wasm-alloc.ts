// The Lua allocator of the wasmoon engine, as a tiny WebAssembly module.
//
// Every Lua allocation and free goes through the state's lua_Alloc. Written
// in JS (emscripten's addFunction), each one crossed from WASM to JS and back
// (to the glue's realloc/free): some 20 round trips per transaction, a fifth
// of the replay time. This module is the same function in WASM, calling the
// glue's own realloc and free directly, so nothing leaves WebAssembly.
//
// Per state, `ud` points to three u32 in the glue's memory: bytes in use, the
// limit, and whether the limit applies now (non-zero while script code runs;
// see wasmoon.ts). The function (ud, ptr, osize, nsize):
//   nsize == 0: free(ptr) if ptr; used -= osize; return 0
//   delta = ptr ? nsize - osize : nsize   (osize is a type tag when ptr is 0)
//   if enforcing && delta > 0 && used + delta > limit: return 0
//   np = realloc(ptr, nsize); if np: used += delta; return np
//
// The bytes below are that function, hand-assembled (the opcodes are named
// in the comments); there is no WebAssembly toolchain in this project.

const I32 = 0x7f

/** unsigned LEB128 */
function u(n: number): number[] {
  const out: number[] = []
  do {
    let b = n & 0x7f
    n >>>= 7
    if (n !== 0) b |= 0x80
    out.push(b)
  } while (n !== 0)
  return out
}
const str = (s: string): number[] => [...u(s.length), ...[...s].map((c) => c.charCodeAt(0))]
const section = (id: number, body: number[]): number[] => [id, ...u(body.length), ...body]
const vec = (items: number[][]): number[] => [...u(items.length), ...items.flat()]

// opcodes
const get = (i: number): number[] => [0x20, i]
const set = (i: number): number[] => [0x21, i]
const tee = (i: number): number[] => [0x22, i]
const load = (offset: number): number[] => [0x28, 2, offset] // i32.load align=4
const store = (offset: number): number[] => [0x36, 2, offset] // i32.store align=4
const IF = 0x04
const ELSE = 0x05
const END = 0x0b
const RETURN = 0x0f
const CALL = 0x10
const VOID = 0x40
const EQZ = 0x45
const GT_S = 0x4a
const GT_U = 0x4b
const ADD = 0x6a
const SUB = 0x6b
const ZERO = [0x41, 0] // i32.const 0

// params: 0 ud, 1 ptr, 2 osize, 3 nsize; locals: 4 delta, 5 np
// imported functions: 0 realloc, 1 free
const body = [
  ...get(3), EQZ, IF, VOID,
  ...get(1), IF, VOID,
  ...get(0), ...get(0), ...load(0), ...get(2), SUB, ...store(0),
  ...get(1), CALL, 1,
  END,
  ...ZERO, RETURN,
  END,
  ...get(1), IF, I32, ...get(3), ...get(2), SUB, ELSE, ...get(3), END, ...set(4),
  ...get(0), ...load(8), IF, VOID,
  ...get(4), ...ZERO, GT_S, IF, VOID,
  ...get(0), ...load(0), ...get(4), ADD, ...get(0), ...load(4), GT_U, IF, VOID,
  ...ZERO, RETURN,
  END,
  END,
  END,
  ...get(1), ...get(3), CALL, 0, ...tee(5), IF, VOID,
  ...get(0), ...get(0), ...load(0), ...get(4), ADD, ...store(0),
  END,
  ...get(5),
  END,
]

const MODULE = new Uint8Array([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // \0asm, version 1
  ...section(1, vec([
    [0x60, ...vec([[I32], [I32], [I32], [I32]]), ...vec([[I32]])], // 0: lua_Alloc
    [0x60, ...vec([[I32], [I32]]), ...vec([[I32]])], // 1: realloc
    [0x60, ...vec([[I32]]), ...vec([])], // 2: free
  ])),
  ...section(2, vec([
    [...str('env'), ...str('realloc'), 0x00, 1],
    [...str('env'), ...str('free'), 0x00, 2],
    [...str('env'), ...str('memory'), 0x02, 0x00, 0], // memory, no maximum, min 0 pages
  ])),
  ...section(3, vec([[0]])), // one function of type 0
  ...section(7, vec([[...str('alloc'), 0x00, 2]])), // export function 2 (after the two imports)
  ...section(10, vec([(() => {
    const code = [...vec([[2, I32]]), ...body] // two i32 locals
    return [...u(code.length), ...code]
  })()])),
])

/** The glue's exports this needs. */
export interface GlueExports {
  readonly memory: WebAssembly.Memory
  readonly realloc: (...args: never[]) => unknown
  readonly free: (...args: never[]) => unknown
  readonly __indirect_function_table: WebAssembly.Table
}

/**
 * Instantiates the allocator against the glue and puts it in the glue's
 * function table; returns its table index (the lua_Alloc to pass to
 * lua_newstate), or undefined when this WebAssembly cannot take it.
 */
export function installWasmAllocator(glue: GlueExports): number | undefined {
  try {
    const module = new WebAssembly.Module(MODULE)
    const instance = new WebAssembly.Instance(module, { env: { realloc: glue.realloc, free: glue.free, memory: glue.memory } })
    const table = glue.__indirect_function_table
    const index = table.grow(1)
    table.set(index, instance.exports.alloc as (...args: never[]) => unknown)
    return index
  } catch {
    return undefined
  }
}
