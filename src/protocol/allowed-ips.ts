/**
 * Cryptokey routing table (whitepaper §2, §4): the allowed IPs of every peer
 * in two path-compressed binary tries, IPv4 and IPv6, with longest-prefix
 * match. Sending: the peer for a destination address. Receiving: the inner
 * source address must map back to the peer the packet came from.
 *
 * Each node holds a prefix (its full address bytes, masked, and a cidr); a
 * node with a value is an entry, one without is a branching point. A node's
 * children differ at bit `cidr`. Every entry is also indexed per value, so
 * removing a peer costs its own entries, not a walk of the table.
 */

class TrieNode<V> {
  key: Uint8Array;
  cidr: number;
  value: V | null;
  parent: TrieNode<V> | null = null;
  readonly child: [TrieNode<V> | null, TrieNode<V> | null] = [null, null];
  constructor(key: Uint8Array, cidr: number, value: V | null) {
    this.key = key;
    this.cidr = cidr;
    this.value = value;
  }
}

/** Bit `i` (0 = most significant bit of byte 0) of `b` starting at `at`. */
function bitAt(b: Uint8Array, at: number, i: number): 0 | 1 {
  return ((b[at + (i >>> 3)]! >>> (7 - (i & 7))) & 1) as 0 | 1;
}

/** Number of leading bits equal in a[0..] and b[bAt..], up to `max`. */
function commonBits(a: Uint8Array, b: Uint8Array, bAt: number, max: number): number {
  const bytes = max >>> 3;
  let i = 0;
  for (; i < bytes; i++) {
    const x = a[i]! ^ b[bAt + i]!;
    if (x !== 0) return Math.min(max, i * 8 + Math.clz32(x) - 24);
  }
  if ((max & 7) === 0) return max;
  const x = a[i]! ^ b[bAt + i]!;
  return Math.min(max, i * 8 + (x === 0 ? 8 : Math.clz32(x) - 24));
}

/** A copy of `addr` with every bit from `cidr` on cleared. */
export function masked(addr: Uint8Array, cidr: number): Uint8Array {
  const out = new Uint8Array(addr); // a copy, also when addr is a Buffer
  for (let i = 0; i < out.length; i++) {
    const keep = Math.max(0, Math.min(8, cidr - i * 8));
    out[i]! &= keep === 8 ? 0xff : (0xff00 >>> keep) & 0xff;
  }
  return out;
}

class Trie<V> {
  root: TrieNode<V> | null = null;
  constructor(readonly bits: number) {}

  insert(addr: Uint8Array, cidr: number, value: V): { node: TrieNode<V>; previous: V | null } {
    const key = masked(addr, cidr);
    let parent: TrieNode<V> | null = null;
    let side: 0 | 1 = 0;
    let node = this.root;
    for (;;) {
      if (!node) {
        const n = new TrieNode(key, cidr, value);
        this.attach(parent, side, n);
        return { node: n, previous: null };
      }
      const c = commonBits(node.key, key, 0, Math.min(node.cidr, cidr));
      if (c === node.cidr && c === cidr) {
        const previous = node.value;
        node.value = value;
        return { node, previous };
      }
      if (c === node.cidr) {
        // node's prefix contains the new one: descend.
        parent = node;
        side = bitAt(key, 0, node.cidr);
        node = node.child[side];
        continue;
      }
      const n = new TrieNode(key, cidr, value);
      if (c === cidr) {
        // The new prefix contains node: it becomes node's parent.
        this.attach(parent, side, n);
        this.attach(n, bitAt(node.key, 0, cidr), node);
        return { node: n, previous: null };
      }
      // They diverge at bit c: a branching node holds both.
      const branch = new TrieNode<V>(masked(key, c), c, null);
      this.attach(parent, side, branch);
      this.attach(branch, bitAt(key, 0, c), n);
      this.attach(branch, bitAt(node.key, 0, c), node);
      return { node: n, previous: null };
    }
  }

  private attach(parent: TrieNode<V> | null, side: 0 | 1, n: TrieNode<V> | null): void {
    if (n) n.parent = parent;
    if (parent) parent.child[side] = n;
    else this.root = n;
  }

  /** Longest-prefix match of the address at buf[at, at + bits/8). */
  lookup(buf: Uint8Array, at: number): V | null {
    let best: V | null = null;
    let node = this.root;
    while (node) {
      if (commonBits(node.key, buf, at, node.cidr) < node.cidr) break;
      if (node.value !== null) best = node.value;
      if (node.cidr === this.bits) break;
      node = node.child[bitAt(buf, at, node.cidr)];
    }
    return best;
  }

  /** Finds the node holding exactly addr/cidr. */
  find(addr: Uint8Array, cidr: number): TrieNode<V> | null {
    const key = masked(addr, cidr);
    let node = this.root;
    while (node && node.cidr <= cidr) {
      if (commonBits(node.key, key, 0, node.cidr) < node.cidr) return null;
      if (node.cidr === cidr) return node;
      node = node.child[bitAt(key, 0, node.cidr)];
    }
    return null;
  }

  /** Clears a node's value and removes nodes that no longer branch. */
  release(node: TrieNode<V>): void {
    node.value = null;
    let n: TrieNode<V> | null = node;
    while (n && n.value === null) {
      const kids = (n.child[0] ? 1 : 0) + (n.child[1] ? 1 : 0);
      if (kids === 2) return;
      const only = n.child[0] ?? n.child[1];
      const parent: TrieNode<V> | null = n.parent;
      const side: 0 | 1 = parent && parent.child[1] === n ? 1 : 0;
      this.attach(parent, side, only);
      n = parent;
    }
  }
}

export interface Prefix {
  family: 4 | 6;
  /** 4 or 16 bytes, masked to cidr. */
  address: Uint8Array;
  cidr: number;
}

export class AllowedIps<V extends object> {
  private readonly v4 = new Trie<V>(32);
  private readonly v6 = new Trie<V>(128);
  private readonly byValue = new Map<V, Set<TrieNode<V>>>();

  private trie(family: 4 | 6): Trie<V> {
    return family === 4 ? this.v4 : this.v6;
  }

  /** Maps addr/cidr to value; an existing entry for the same prefix moves to the new value. */
  insert(family: 4 | 6, addr: Uint8Array, cidr: number, value: V): void {
    const bits = family === 4 ? 32 : 128;
    if (addr.length !== bits / 8) throw new TypeError(`IPv${family} address must be ${bits / 8} bytes`);
    if (!Number.isInteger(cidr) || cidr < 0 || cidr > bits) throw new RangeError(`cidr ${cidr} out of range for IPv${family}`);
    const { node, previous } = this.trie(family).insert(addr, cidr, value);
    if (previous !== null && previous !== value) this.byValue.get(previous)?.delete(node);
    let set = this.byValue.get(value);
    if (!set) this.byValue.set(value, (set = new Set()));
    set.add(node);
  }

  /** Removes addr/cidr if it maps to `value`; returns whether it did. */
  remove(family: 4 | 6, addr: Uint8Array, cidr: number, value: V): boolean {
    const node = this.trie(family).find(addr, cidr);
    if (!node || node.value !== value) return false;
    this.byValue.get(value)?.delete(node);
    this.trie(family).release(node);
    return true;
  }

  /** Removes every entry of `value`. */
  removeValue(value: V): void {
    const set = this.byValue.get(value);
    if (!set) return;
    this.byValue.delete(value);
    for (const node of set) {
      if (node.value !== value) continue;
      this.trie(node.key.length === 4 ? 4 : 6).release(node);
    }
  }

  /** Longest-prefix match for the IPv4 address at buf[at, at+4). */
  lookup4(buf: Uint8Array, at: number): V | null {
    return this.v4.lookup(buf, at);
  }

  /** Longest-prefix match for the IPv6 address at buf[at, at+16). */
  lookup6(buf: Uint8Array, at: number): V | null {
    return this.v6.lookup(buf, at);
  }

  /** The prefixes of `value`. */
  entriesOf(value: V): Prefix[] {
    const out: Prefix[] = [];
    for (const node of this.byValue.get(value) ?? []) {
      out.push({ family: node.key.length === 4 ? 4 : 6, address: node.key, cidr: node.cidr });
    }
    return out;
  }

  /** Number of prefixes of `value`. */
  countOf(value: V): number {
    return this.byValue.get(value)?.size ?? 0;
  }
}
