/**
 * A fixed block of memory laid out for recvmmsg/sendmmsg: `slots` datagram buffers,
 * their iovecs, sockaddr names, control-message buffers (receive side: where the
 * kernel puts SCM_TIMESTAMPNS) and mmsghdrs, all in one Buffer whose addresses are
 * written into the headers once. The Buffer is held by the arena for its whole life:
 * the kernel writes into it on every call, and a collected Buffer would turn the
 * next call into EFAULT or a write into freed memory.
 */
import koffi from 'koffi';
import {
  CMSGHDR_SIZE,
  CMSG_ALIGN,
  CMSG_DATA,
  CMSG_LEN_OFF,
  CMSG_LEVEL,
  CMSG_SPACE_TIMESPEC,
  CMSG_TYPE,
  IOVEC_SIZE,
  IOV_BASE,
  IOV_LEN,
  MMSGHDR_SIZE,
  MMSG_HDR,
  MMSG_LEN,
  MSG_CONTROL,
  MSG_CONTROLLEN,
  MSG_FLAGS,
  MSG_IOV,
  MSG_IOVLEN,
  MSG_NAME,
  MSG_NAMELEN,
  SCM_TIMESTAMPNS,
  SOCKADDR_MAX,
  SOL_SOCKET,
  TS_NSEC,
  TS_SEC,
} from './kernel.js';

export class MsgArena {
  /** The one allocation. Never replaced, never sliced away from this field. */
  readonly memory: Buffer;
  readonly slots: number;
  readonly slotSize: number;
  /** Views of the regions (same memory). */
  readonly data: Buffer;
  readonly names: Buffer;
  readonly headers: Buffer;
  /**
   * Aligned 32-bit view of the headers, iovecs and control buffers (the arena's memory
   * has its own ArrayBuffer at offset 0): header fields and control messages are read
   * through it.
   */
  readonly headerWords: Int32Array;
  /** Bytes of control-message room per slot (0: none, msg_control stays NULL). */
  readonly controlSize: number;
  private readonly iovecs: Buffer;
  private readonly base: bigint;
  private readonly dataOff: number;
  private readonly namesOff: number;
  private readonly controlOff: number;

  constructor(slots: number, slotSize: number, controlSize = 0) {
    this.slots = slots;
    this.slotSize = slotSize;
    this.controlSize = controlSize;
    const headersLen = slots * MMSGHDR_SIZE;
    const iovLen = slots * IOVEC_SIZE;
    const namesLen = slots * SOCKADDR_MAX;
    // Control buffers are 8-aligned (CMSG_ALIGN): headers and iovecs are multiples of 16.
    this.controlOff = headersLen + iovLen;
    // 64-byte alignment for the headers; data after the small regions.
    this.namesOff = this.controlOff + slots * controlSize;
    this.dataOff = Math.ceil((this.namesOff + namesLen) / 64) * 64;
    this.memory = Buffer.alloc(this.dataOff + slots * slotSize);
    this.base = koffi.address(this.memory);
    this.headers = this.memory.subarray(0, headersLen);
    this.headerWords = new Int32Array(this.memory.buffer, this.memory.byteOffset, this.namesOff >> 2);
    this.iovecs = this.memory.subarray(headersLen, headersLen + iovLen);
    this.names = this.memory.subarray(this.namesOff, this.namesOff + namesLen);
    this.data = this.memory.subarray(this.dataOff);
    for (let i = 0; i < slots; i++) {
      const iov = i * IOVEC_SIZE;
      this.iovecs.writeBigUInt64LE(this.base + BigInt(this.dataOff + i * slotSize), iov + IOV_BASE);
      this.iovecs.writeBigUInt64LE(BigInt(slotSize), iov + IOV_LEN);
      const h = i * MMSGHDR_SIZE + MMSG_HDR;
      this.headers.writeBigUInt64LE(this.base + BigInt(this.namesOff + i * SOCKADDR_MAX), h + MSG_NAME);
      this.headers.writeUInt32LE(SOCKADDR_MAX, h + MSG_NAMELEN);
      this.headers.writeBigUInt64LE(this.base + BigInt(headersLen + iov), h + MSG_IOV);
      this.headers.writeBigUInt64LE(1n, h + MSG_IOVLEN);
      if (controlSize > 0) this.headers.writeBigUInt64LE(this.base + BigInt(this.controlOffset(i)), h + MSG_CONTROL);
      this.headers.writeBigUInt64LE(BigInt(controlSize), h + MSG_CONTROLLEN);
    }
  }

  /** Byte offset of slot i's control buffer within `memory` (a multiple of 8). */
  controlOffset(i: number): number {
    return this.controlOff + i * this.controlSize;
  }

  /** Byte offset of slot i's data within `memory`. */
  dataOffset(i: number): number {
    return this.dataOff + i * this.slotSize;
  }

  /** Byte offset of slot i's sockaddr within `memory`. */
  nameOffset(i: number): number {
    return this.namesOff + i * SOCKADDR_MAX;
  }

  /**
   * Resets what recvmmsg overwrites (namelen, controllen, flags) for the first n
   * headers. The kernel writes them only for the messages it returned, so after a
   * call that returned k messages, resetting k headers is enough (the caller passes
   * the whole batch after a failed call). msg_controllen is a size_t: its high word
   * is never written by the kernel for sizes this small, so the low word is reset.
   */
  resetForReceive(n: number): void {
    const w = this.headerWords;
    const stride = MMSGHDR_SIZE >> 2;
    const nameLen = (MMSG_HDR + MSG_NAMELEN) >> 2;
    const controlLen = (MMSG_HDR + MSG_CONTROLLEN) >> 2;
    const flags = (MMSG_HDR + MSG_FLAGS) >> 2;
    const control = this.controlSize;
    for (let i = 0, o = 0; i < n; i++, o += stride) {
      w[o + nameLen] = SOCKADDR_MAX;
      w[o + controlLen] = control;
      w[o + flags] = 0;
    }
  }

  /** The receive time readTimestamp found: seconds (-1: none) and nanoseconds. */
  tsSec = -1;
  tsNsec = 0;

  /** Finds SCM_TIMESTAMPNS among slot i's control messages (`used` bytes) into tsSec/tsNsec. */
  readTimestamp(i: number, used: number): void {
    const w = this.headerWords;
    const base = this.controlOffset(i);
    this.tsSec = -1;
    for (let off = 0; off + CMSGHDR_SIZE <= used; ) {
      const o = (base + off) >> 2;
      const len = w[o + (CMSG_LEN_OFF >> 2)]!;
      if (len < CMSGHDR_SIZE) return;
      if (w[o + (CMSG_LEVEL >> 2)] === SOL_SOCKET && w[o + (CMSG_TYPE >> 2)] === SCM_TIMESTAMPNS && off + CMSG_SPACE_TIMESPEC <= used) {
        const d = o + (CMSG_DATA >> 2);
        // i64 seconds (positive, so the low word is unsigned) and i64 nanoseconds (< 1e9).
        this.tsSec = (w[d + (TS_SEC >> 2)]! >>> 0) + w[d + (TS_SEC >> 2) + 1]! * 0x1_0000_0000;
        this.tsNsec = w[d + (TS_NSEC >> 2)]!;
        return;
      }
      off += CMSG_ALIGN(len);
    }
  }

  /**
   * Lays out slot i as recvmmsg would leave it after receiving `data` from `name` (with
   * an SCM_TIMESTAMPNS of `nowMs`, if given): the warm-up runs samples through the same
   * delivery loop as datagrams. A timestamp needs a control buffer of CMSG_SPACE_TIMESPEC.
   */
  layOutReceived(i: number, data: Uint8Array, name: Buffer, nowMs: number | undefined): void {
    const w = this.headerWords;
    const len = Math.min(data.length, this.slotSize);
    this.memory.set(len === data.length ? data : data.subarray(0, len), this.dataOffset(i));
    name.copy(this.memory, this.nameOffset(i));
    const h = (i * MMSGHDR_SIZE) >> 2;
    w[h + (MMSG_LEN >> 2)] = len;
    w[h + ((MMSG_HDR + MSG_FLAGS) >> 2)] = 0;
    w[h + ((MMSG_HDR + MSG_CONTROLLEN) >> 2)] = nowMs === undefined ? 0 : CMSG_SPACE_TIMESPEC;
    if (nowMs === undefined) return;
    const c = this.controlOffset(i) >> 2;
    w[c + (CMSG_LEN_OFF >> 2)] = CMSG_SPACE_TIMESPEC;
    w[c + (CMSG_LEVEL >> 2)] = SOL_SOCKET;
    w[c + (CMSG_TYPE >> 2)] = SCM_TIMESTAMPNS;
    const d = c + (CMSG_DATA >> 2);
    w[d + (TS_SEC >> 2)] = Math.floor(nowMs / 1000);
    w[d + (TS_SEC >> 2) + 1] = 0;
    w[d + (TS_NSEC >> 2)] = (nowMs % 1000) * 1_000_000;
  }

  /** Sets slot i's iovec length and name length for sending. */
  setForSend(i: number, dataLen: number, nameLen: number): void {
    this.iovecs.writeBigUInt64LE(BigInt(dataLen), i * IOVEC_SIZE + IOV_LEN);
    this.headers.writeUInt32LE(nameLen, i * MMSGHDR_SIZE + MMSG_HDR + MSG_NAMELEN);
  }
}
