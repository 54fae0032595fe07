//! `harness._histfast`: one pass over a JSONL history file that either builds the
//! `History`'s columns, or reads and checks every op without building it and derives the
//! per-message facts of its sends, deliveries and campaigns (`IdTable`), the bulk of any
//! history, for the checkers.
//!
//! It only ever answers for plain files: every line one JSON object holding the six fields,
//! well typed (see `harness/history.py`). Anything else - a malformed, torn or
//! blank-with-odd-space line, a lone surrogate escape, an integer beyond 64 bits, NaN, a
//! non-UTF-8 byte, an unreadable file - makes `scan` return None, and the caller takes the
//! pure-Python path, which gives the same results and reports the exact error with its line
//! number. A send, delivery or campaign whose value breaks the conventions leaves the facts
//! to Python (which reports the op). What `scan` returns is always what `json.loads`, line
//! by line, would give. It never raises for a file's content.

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::borrow::Cow;
use std::collections::HashMap;
use std::fs::File;
use std::hash::{BuildHasherDefault, Hasher};
use std::io::Read;
use std::path::PathBuf;

/// Not plain: the caller takes the Python path.
struct Bail;
type R<T> = Result<T, Bail>;

const K: u64 = 0x517c_c1b7_2722_0a95;

/// FxHash over 8-byte words, with a murmur3 finaliser so that ids differing only in their
/// last bytes still spread over the table's low bits.
#[derive(Default)]
struct Fx(u64);

impl Hasher for Fx {
    fn write(&mut self, bytes: &[u8]) {
        let mut h = self.0;
        let mut words = bytes.chunks_exact(8);
        for w in &mut words {
            h = (h.rotate_left(5) ^ u64::from_le_bytes(w.try_into().unwrap())).wrapping_mul(K);
        }
        let rest = words.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            h = (h.rotate_left(5) ^ u64::from_le_bytes(w)).wrapping_mul(K);
        }
        self.0 = h;
    }

    fn write_usize(&mut self, n: usize) {
        self.0 = (self.0.rotate_left(5) ^ n as u64).wrapping_mul(K);
    }

    fn finish(&self) -> u64 {
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }
}

type FxMap<V> = HashMap<Box<[u8]>, V, BuildHasherDefault<Fx>>;

fn fx(s: &[u8]) -> u64 {
    let mut h = Fx::default();
    h.write(s);
    h.finish()
}

/// Distinct message ids, numbered in first-seen order: their bytes end to end in one arena
/// (no allocation per id) and a hash table of their numbers.
#[derive(Default)]
struct Ids {
    arena: Vec<u8>,
    spans: Vec<(usize, usize)>,
    table: hashbrown::HashTable<u32>,
}

impl Ids {
    fn bytes(&self, m: usize) -> &[u8] {
        let (start, end) = self.spans[m];
        &self.arena[start..end]
    }

    fn len(&self) -> usize {
        self.spans.len()
    }

    fn get(&self, s: &[u8]) -> Option<u32> {
        self.table.find(fx(s), |&m| self.bytes(m as usize) == s).copied()
    }

    /// s's number, and whether s is new.
    fn intern(&mut self, s: &[u8]) -> (u32, bool) {
        let hash = fx(s);
        let (arena, spans) = (&self.arena, &self.spans);
        let bytes = |m: u32| {
            let (start, end) = spans[m as usize];
            &arena[start..end]
        };
        if let Some(&m) = self.table.find(hash, |&m| bytes(m) == s) {
            return (m, false);
        }
        let m = self.spans.len() as u32;
        let start = self.arena.len();
        self.arena.extend_from_slice(s);
        self.spans.push((start, self.arena.len()));
        let (arena, spans) = (&self.arena, &self.spans);
        self.table.insert_unique(hash, m, |&k| {
            let (start, end) = spans[k as usize];
            fx(&arena[start..end])
        });
        (m, true)
    }

    fn reserve(&mut self, n: usize) {
        self.spans.reserve(n);
        self.arena.reserve(n * 16);
        let (arena, spans) = (&self.arena, &self.spans);
        self.table.reserve(n, |&k| {
            let (start, end) = spans[k as usize];
            fx(&arena[start..end])
        });
    }
}

const NONE: u32 = u32::MAX;
const REFUSED: u8 = 1; // a fail
const UNKNOWN: u8 = 2; // (from sends and campaigns alike)
/// Deeper values are left to Python (whose own limit is higher: it then parses them).
const MAX_DEPTH: u32 = 200;
/// Names kept as one shared (interned) string each: dict keys, process, f.
const MAX_NAME: usize = 64;
const MAX_NAMES: usize = 1 << 14;

#[derive(Clone, Copy)]
struct IdState {
    sent_op: u32,  // first send invoke, in op order
    ack_op: u32,   // first send ok
    camp_op: u32,  // first campaign op naming it
    camp_ack_op: u32, // first campaign ok naming it
    first_op: u32, // earliest delivery (by time; the first in op order among equal times)
    count: u32,    // deliveries
    flags: u8,     // REFUSED: a send fail; UNKNOWN: a send info
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Send,
    Deliver,
    Campaign,
    Other,
}

/// What the top-level value was, for the facts.
enum Cap<'a> {
    None,
    Str(Cow<'a, [u8]>),    // a string: a message id
    DictId(Cow<'a, [u8]>), // a dict whose "id" is a string: that id
    DictBadId,             // a dict whose "id" is not a string
}

/// An owned reference, released on drop (so that bailing out half-way leaks nothing).
struct Obj(*mut ffi::PyObject);

impl Obj {
    fn new(p: *mut ffi::PyObject) -> R<Obj> {
        if p.is_null() {
            // a MemoryError: dropped here; the Python path meets it again and reports it
            unsafe { ffi::PyErr_Clear() };
            Err(Bail)
        } else {
            Ok(Obj(p))
        }
    }
    fn share(&self) -> Obj {
        unsafe { ffi::Py_INCREF(self.0) };
        Obj(self.0)
    }
    fn into_ptr(self) -> *mut ffi::PyObject {
        let p = self.0;
        std::mem::forget(self);
        p
    }
}

impl Drop for Obj {
    fn drop(&mut self) {
        unsafe { ffi::Py_DECREF(self.0) }
    }
}

fn text(bytes: &[u8]) -> R<Obj> {
    // bytes are valid UTF-8: checked for the whole block, or produced by unescaping
    Obj::new(unsafe {
        ffi::PyUnicode_FromStringAndSize(bytes.as_ptr() as *const _, bytes.len() as ffi::Py_ssize_t)
    })
}

fn int(n: i64) -> R<Obj> {
    Obj::new(unsafe { ffi::PyLong_FromLongLong(n) })
}

fn list(items: Vec<Obj>) -> R<Obj> {
    let l = Obj::new(unsafe { ffi::PyList_New(items.len() as ffi::Py_ssize_t) })?;
    for (i, item) in items.into_iter().enumerate() {
        unsafe { ffi::PyList_SET_ITEM(l.0, i as ffi::Py_ssize_t, item.into_ptr()) };
    }
    Ok(l)
}

fn set_item(d: &Obj, k: &Obj, v: &Obj) -> R<()> {
    if unsafe { ffi::PyDict_SetItem(d.0, k.0, v.0) } < 0 {
        unsafe { ffi::PyErr_Clear() };
        return Err(Bail);
    }
    Ok(())
}

/// A Python list grown op by op (no second copy of millions of pointers at the end).
struct Column(Obj);

impl Column {
    fn new() -> R<Column> {
        Ok(Column(Obj::new(unsafe { ffi::PyList_New(0) })?))
    }

    fn push(&self, item: Obj) -> R<()> {
        // the list takes its own reference; item's is released on return
        if unsafe { ffi::PyList_Append(self.0 .0, item.0) } < 0 {
            unsafe { ffi::PyErr_Clear() };
            return Err(Bail);
        }
        Ok(())
    }
}

struct Scanner {
    objects: bool, // build every op's objects (the columns), or only check them
    threads: bool, // read and check lines on two threads
    block: usize,  // bytes read at a time
    facts: bool,
    names: FxMap<Obj>,
    types: [Obj; 4], // invoke, ok, fail, info (interned: the very objects sys.intern gives)
    ids: Ids,
    id_objs: Vec<Obj>,        // with objects: one string per id, shared by the values
    states: Vec<IdState>,
    // the columns, with objects: process, type, f, value, time, wall
    columns: [Column; 6],
    times: Vec<i64>,
    // facts
    regular: bool, // every send names a string id, every delivery a dict with a string "id"
    deliveries: Vec<(u32, u64)>, // (id, offset of its line in the file)
    others: Vec<Obj>, // (op, f, type, value, time) of the ops neither send nor deliver
}

fn is_ws(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\r' | b'\n')
}

fn skip_ws(b: &[u8], i: &mut usize) {
    while *i < b.len() && is_ws(b[*i]) {
        *i += 1;
    }
}

fn expect(b: &[u8], i: &mut usize, c: u8) -> R<()> {
    skip_ws(b, i);
    if *i < b.len() && b[*i] == c {
        *i += 1;
        Ok(())
    } else {
        Err(Bail)
    }
}

fn hex4(b: &[u8], i: usize) -> R<u32> {
    if i + 4 > b.len() {
        return Err(Bail);
    }
    let mut n = 0u32;
    for &c in &b[i..i + 4] {
        let d = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            b'A'..=b'F' => c - b'A' + 10,
            _ => return Err(Bail),
        };
        n = n * 16 + d as u32;
    }
    Ok(n)
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// Whether any of the 8 bytes of w is '"', '\\' or a control character (< 0x20).
#[inline]
fn special(w: u64) -> bool {
    let zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGHS;
    (zero(w ^ (ONES * b'"' as u64)) | zero(w ^ (ONES * b'\\' as u64))
        | (w.wrapping_sub(ONES * 0x20) & !w & HIGHS))
        != 0
}

/// A JSON string at b[*i] == '"', unescaped.
fn string<'a>(b: &'a [u8], i: &mut usize) -> R<Cow<'a, [u8]>> {
    *i += 1;
    let start = *i;
    // 8 bytes at a time to the first that needs a look
    while *i + 8 <= b.len() && !special(u64::from_le_bytes(b[*i..*i + 8].try_into().unwrap())) {
        *i += 8;
    }
    loop {
        let c = *b.get(*i).ok_or(Bail)?;
        if c == b'"' {
            *i += 1;
            return Ok(Cow::Borrowed(&b[start..*i - 1]));
        }
        if c == b'\\' {
            break;
        }
        if c < 0x20 {
            return Err(Bail); // json.loads refuses raw control characters in strings
        }
        *i += 1;
    }
    let mut out = b[start..*i].to_vec();
    loop {
        let c = *b.get(*i).ok_or(Bail)?;
        *i += 1;
        match c {
            b'"' => return Ok(Cow::Owned(out)),
            b'\\' => {
                let e = *b.get(*i).ok_or(Bail)?;
                *i += 1;
                match e {
                    b'"' | b'\\' | b'/' => out.push(e),
                    b'b' => out.push(8),
                    b'f' => out.push(12),
                    b'n' => out.push(b'\n'),
                    b'r' => out.push(b'\r'),
                    b't' => out.push(b'\t'),
                    b'u' => {
                        let mut cp = hex4(b, *i)?;
                        *i += 4;
                        if (0xD800..0xDC00).contains(&cp) {
                            // a pair, or a lone surrogate, which Rust strings cannot hold
                            if b.get(*i) != Some(&b'\\') || b.get(*i + 1) != Some(&b'u') {
                                return Err(Bail);
                            }
                            let lo = hex4(b, *i + 2)?;
                            if !(0xDC00..0xE000).contains(&lo) {
                                return Err(Bail);
                            }
                            *i += 6;
                            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                        } else if (0xDC00..0xE000).contains(&cp) {
                            return Err(Bail);
                        }
                        let ch = char::from_u32(cp).ok_or(Bail)?;
                        let mut buf = [0u8; 4];
                        out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                    }
                    _ => return Err(Bail),
                }
            }
            c if c < 0x20 => return Err(Bail),
            c => out.push(c),
        }
    }
}

/// The end of a JSON number at b[*i] ('-' or a digit), as json.loads reads it, and whether
/// it is a float (it has a fraction or an exponent); *i is left after it.
fn number_end(b: &[u8], i: &mut usize) -> R<bool> {
    if b[*i] == b'-' {
        *i += 1;
    }
    let digits = |i: &mut usize| {
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
    };
    match b.get(*i) {
        Some(b'0') => *i += 1,
        Some(b'1'..=b'9') => digits(i),
        _ => return Err(Bail),
    }
    let mut float = false;
    if b.get(*i) == Some(&b'.') && b.get(*i + 1).is_some_and(u8::is_ascii_digit) {
        *i += 1;
        digits(i);
        float = true;
    }
    if matches!(b.get(*i), Some(b'e' | b'E')) {
        let mut j = *i + 1;
        if matches!(b.get(j), Some(b'+' | b'-')) {
            j += 1;
        }
        if b.get(j).is_some_and(u8::is_ascii_digit) {
            *i = j;
            digits(i);
            float = true;
        }
    }
    Ok(float)
}

/// A JSON number as a Python int or float. Integers beyond 64 bits are left to Python.
fn number(b: &[u8], i: &mut usize) -> R<Obj> {
    let start = *i;
    let float = number_end(b, i)?;
    let s = unsafe { std::str::from_utf8_unchecked(&b[start..*i]) }; // ASCII digits and signs
    if float {
        let x = s.parse::<f64>().map_err(|_| Bail)?;
        Obj::new(unsafe { ffi::PyFloat_FromDouble(x) })
    } else {
        int(s.parse::<i64>().map_err(|_| Bail)?)
    }
}

/// Whether a JSON integer fits in 64 bits (18 digits always do).
fn fits_i64(s: &[u8]) -> R<()> {
    if s.len() < 19 {
        return Ok(());
    }
    let s = unsafe { std::str::from_utf8_unchecked(s) }; // ASCII digits and a sign
    s.parse::<i64>().map(drop).map_err(|_| Bail)
}

fn literal(b: &[u8], i: &mut usize, word: &[u8]) -> R<()> {
    if b[*i..].starts_with(word) {
        *i += word.len();
        Ok(())
    } else {
        Err(Bail)
    }
}

/// The members of a JSON object at b[*i] == '{': `member` gets each key, unescaped, with *i
/// at its value (after whitespace), and leaves *i past the value. The one copy of the
/// object grammar every reader here uses.
fn members<'a>(b: &'a [u8], i: &mut usize,
               mut member: impl FnMut(Cow<'a, [u8]>, &mut usize) -> R<()>) -> R<()> {
    *i += 1;
    skip_ws(b, i);
    if b.get(*i) == Some(&b'}') {
        *i += 1;
        return Ok(());
    }
    loop {
        skip_ws(b, i);
        if b.get(*i) != Some(&b'"') {
            return Err(Bail);
        }
        let key = string(b, i)?;
        expect(b, i, b':')?;
        skip_ws(b, i);
        member(key, i)?;
        skip_ws(b, i);
        match b.get(*i) {
            Some(b',') => *i += 1,
            Some(b'}') => {
                *i += 1;
                return Ok(());
            }
            _ => return Err(Bail),
        }
    }
}

/// The elements of a JSON array at b[*i] == '[': `element` gets *i at each (after
/// whitespace), and leaves *i past it.
fn elements(b: &[u8], i: &mut usize, mut element: impl FnMut(&mut usize) -> R<()>) -> R<()> {
    *i += 1;
    skip_ws(b, i);
    if b.get(*i) == Some(&b']') {
        *i += 1;
        return Ok(());
    }
    loop {
        skip_ws(b, i);
        element(i)?;
        skip_ws(b, i);
        match b.get(*i) {
            Some(b',') => *i += 1,
            Some(b']') => {
                *i += 1;
                return Ok(());
            }
            _ => return Err(Bail),
        }
    }
}

/// Past one JSON value at b[*i] (after whitespace), checking it as json.loads would.
fn skip(b: &[u8], i: &mut usize, depth: u32) -> R<()> {
    skip_ws(b, i);
    match *b.get(*i).ok_or(Bail)? {
        open @ (b'{' | b'[') => {
            if depth + 1 > MAX_DEPTH {
                return Err(Bail);
            }
            if open == b'{' {
                members(b, i, |_, i| skip(b, i, depth + 1))
            } else {
                elements(b, i, |i| skip(b, i, depth + 1))
            }
        }
        b'"' => string(b, i).map(drop),
        b't' => literal(b, i, b"true"),
        b'f' => literal(b, i, b"false"),
        b'n' => literal(b, i, b"null"),
        b'-' | b'0'..=b'9' => {
            let start = *i;
            if !number_end(b, i)? {
                // an int: Python would keep a huge one, the columns could not; bail alike
                fits_i64(&b[start..*i])?;
            }
            Ok(())
        }
        _ => Err(Bail),
    }
}

/// One line's op, read and checked, with no Python object made (worker threads read lines).
struct Pre<'a> {
    process: Cow<'a, [u8]>,
    type_code: usize,
    f: Cow<'a, [u8]>,
    kind: Kind,
    value: (usize, usize), // the value's bytes in the line
    cap: Cap<'a>,
    time: i64,
    wall: (usize, usize),  // the wall's bytes in the line
}

/// Checks an op's value without building it; a string, or a dict's string "id", is taken
/// as a message id.
fn check_value<'a>(b: &'a [u8], i: &mut usize) -> R<Cap<'a>> {
    skip_ws(b, i);
    match b.get(*i) {
        Some(b'"') => Ok(Cap::Str(string(b, i)?)),
        Some(b'{') => {
            let mut cap = Cap::None;
            members(b, i, |key, i| {
                if &*key != b"id" {
                    return skip(b, i, 1);
                }
                // the last "id" wins, as in the dict
                if b.get(*i) == Some(&b'"') {
                    cap = Cap::DictId(string(b, i)?);
                    Ok(())
                } else {
                    cap = Cap::DictBadId;
                    skip(b, i, 1)
                }
            })?;
            Ok(cap)
        }
        _ => skip(b, i, 0).map(|_| Cap::None),
    }
}

/// One line (without its newline), read and checked: None if blank.
fn parse_line(b: &[u8]) -> R<Option<Pre<'_>>> {
    let mut i = 0;
    skip_ws(b, &mut i);
    if i == b.len() {
        return Ok(None);
    }
    if b[i] != b'{' {
        return Err(Bail);
    }
    let (mut process, mut f, mut value, mut wall) = (None, None, None, None);
    let (mut type_code, mut time) = (NONE as usize, None);
    let (mut kind, mut cap) = (Kind::Other, Cap::None);
    members(b, &mut i, |key, i| {
        let first = *b.get(*i).ok_or(Bail)?;
        match &*key {
            b"process" | b"f" | b"type" => {
                if first != b'"' {
                    return Err(Bail); // not a string: Python reports it
                }
                let s = string(b, i)?;
                match &*key {
                    b"process" => process = Some(s),
                    b"f" => {
                        kind = match &*s {
                            b"send" => Kind::Send,
                            b"deliver" => Kind::Deliver,
                            b"campaign" => Kind::Campaign,
                            _ => Kind::Other,
                        };
                        f = Some(s);
                    }
                    _ => {
                        type_code = match &*s {
                            b"invoke" => 0,
                            b"ok" => 1,
                            b"fail" => 2,
                            b"info" => 3,
                            _ => return Err(Bail),
                        };
                    }
                }
            }
            b"value" => {
                let start = *i;
                cap = check_value(b, i)?;
                value = Some((start, *i));
            }
            b"time" | b"wall" => {
                if !(first == b'-' || first.is_ascii_digit()) {
                    return Err(Bail); // a bool, a string...: Python reports it
                }
                let start = *i;
                let float = number_end(b, i)?;
                if &*key == b"time" {
                    if float {
                        return Err(Bail);
                    }
                    let s = unsafe { std::str::from_utf8_unchecked(&b[start..*i]) };
                    time = Some(s.parse::<i64>().map_err(|_| Bail)?);
                } else {
                    if !float {
                        fits_i64(&b[start..*i])?;
                    }
                    wall = Some((start, *i));
                }
            }
            _ => skip(b, i, 0)?, // another field: valid JSON, ignored
        }
        Ok(())
    })?;
    skip_ws(b, &mut i);
    if i != b.len() || type_code == NONE as usize {
        return Err(Bail);
    }
    let (Some(process), Some(f), Some(value), Some(time), Some(wall)) = (process, f, value, time, wall)
    else {
        return Err(Bail); // a field missing
    };
    Ok(Some(Pre { process, type_code, f, kind, value, cap, time, wall }))
}

/// The ops of the whole lines of data (each ending with a newline), read and checked, with
/// where each line starts and ends in data; blank lines left out.
fn parse_lines(data: &[u8]) -> R<Vec<(usize, usize, Pre<'_>)>> {
    std::str::from_utf8(data).map_err(|_| Bail)?;
    let mut out = Vec::with_capacity(data.len() / 96);
    let mut start = 0;
    for line in data[..data.len() - 1].split(|&c| c == b'\n') {
        if let Some(pre) = parse_line(line)? {
            out.push((start, start + line.len(), pre));
        }
        start += line.len() + 1;
    }
    Ok(out)
}

impl Scanner {
    fn new(objects: bool, facts: bool, threads: bool, block: usize) -> R<Scanner> {
        let intern = |s: &str| -> R<Obj> {
            let o = text(s.as_bytes())?;
            let mut p = o.into_ptr();
            unsafe { ffi::PyUnicode_InternInPlace(&mut p) };
            Obj::new(p)
        };
        Ok(Scanner {
            objects,
            threads,
            block: block.max(1),
            facts,
            names: FxMap::default(),
            types: [intern("invoke")?, intern("ok")?, intern("fail")?, intern("info")?],
            ids: Ids::default(),
            id_objs: Vec::new(),
            states: Vec::new(),
            columns: [Column::new()?, Column::new()?, Column::new()?, Column::new()?,
                      Column::new()?, Column::new()?],
            times: Vec::new(),
            regular: true,
            deliveries: Vec::new(),
            others: Vec::new(),
        })
    }

    /// One shared, interned string per name (as sys.intern gives for process and f).
    fn name(&mut self, s: &[u8]) -> R<Obj> {
        if let Some(o) = self.names.get(s) {
            return Ok(o.share());
        }
        let o = text(s)?;
        if s.len() > MAX_NAME || self.names.len() >= MAX_NAMES {
            return Ok(o);
        }
        let mut p = o.into_ptr();
        unsafe { ffi::PyUnicode_InternInPlace(&mut p) };
        let o = Obj::new(p)?;
        self.names.insert(s.into(), o.share());
        Ok(o)
    }

    /// A message id: one number per distinct id (and with objects, one string).
    fn id(&mut self, s: &[u8]) -> R<u32> {
        if self.ids.len() >= NONE as usize {
            return Err(Bail);
        }
        let (k, new) = self.ids.intern(s);
        if new {
            if self.objects {
                self.id_objs.push(text(s)?);
            }
            self.states.push(IdState {
                sent_op: NONE, ack_op: NONE, camp_op: NONE, camp_ack_op: NONE, first_op: NONE,
                count: 0, flags: 0,
            });
        }
        Ok(k)
    }

    /// A message id in a value being built: with objects, the one string kept per id; else
    /// (a line read again for the facts) a string of its own.
    fn shared_id(&mut self, s: &[u8]) -> R<(u32, Obj)> {
        if self.objects {
            let m = self.id(s)?;
            Ok((m, self.id_objs[m as usize].share()))
        } else {
            Ok((NONE, text(s)?))
        }
    }

    fn value(&mut self, b: &[u8], i: &mut usize, depth: u32) -> R<Obj> {
        skip_ws(b, i);
        match *b.get(*i).ok_or(Bail)? {
            b'{' => self.object(b, i, depth + 1, false),
            b'[' => {
                if depth + 1 > MAX_DEPTH {
                    return Err(Bail);
                }
                let mut items = Vec::new();
                elements(b, i, |i| {
                    items.push(self.value(b, i, depth + 1)?);
                    Ok(())
                })?;
                list(items)
            }
            b'"' => text(&string(b, i)?),
            b't' => {
                literal(b, i, b"true")?;
                Ok(unsafe { Obj(ffi::Py_NewRef(ffi::Py_True())) })
            }
            b'f' => {
                literal(b, i, b"false")?;
                Ok(unsafe { Obj(ffi::Py_NewRef(ffi::Py_False())) })
            }
            b'n' => {
                literal(b, i, b"null")?;
                Ok(unsafe { Obj(ffi::Py_NewRef(ffi::Py_None())) })
            }
            b'-' | b'0'..=b'9' => number(b, i),
            _ => Err(Bail), // NaN, Infinity and the like are left to Python
        }
    }

    /// A JSON object at b[*i] == '{'. With `ids`, a string "id" in it is a message id (its
    /// string shared).
    fn object(&mut self, b: &[u8], i: &mut usize, depth: u32, ids: bool) -> R<Obj> {
        if depth > MAX_DEPTH {
            return Err(Bail);
        }
        let d = Obj::new(unsafe { ffi::PyDict_New() })?;
        members(b, i, |key, i| {
            let k = self.name(&key)?;
            let v = if ids && &*key == b"id" && b.get(*i) == Some(&b'"') {
                self.shared_id(&string(b, i)?)?.1
            } else {
                self.value(b, i, depth)?
            };
            set_item(&d, &k, &v)
        })?;
        Ok(d)
    }

    /// The message ids of a campaign's value {"campaign": ..., "ids": [...]} ("ids" may be
    /// missing: none); None unless a dict whose "ids" is a list of strings.
    fn campaign_ids(&mut self, b: &[u8]) -> R<Option<Vec<u32>>> {
        let mut i = 0;
        skip_ws(b, &mut i);
        if b.get(i) != Some(&b'{') {
            return Ok(None);
        }
        let mut ids = Some(Vec::new());
        members(b, &mut i, |key, i| {
            if &*key != b"ids" {
                return skip(b, i, 1);
            }
            if b.get(*i) != Some(&b'[') {
                ids = None;
                return skip(b, i, 1);
            }
            let mut these = Some(Vec::new()); // the last "ids" wins
            elements(b, i, |i| {
                if b.get(*i) != Some(&b'"') {
                    these = None;
                    return skip(b, i, 2);
                }
                let m = self.id(&string(b, i)?)?;
                if let Some(these) = these.as_mut() {
                    these.push(m);
                }
                Ok(())
            })?;
            ids = these;
            Ok(())
        })?;
        Ok(ids)
    }

    /// The op's value, built: a string is a message id, and so is a dict's string "id".
    fn top_value(&mut self, b: &[u8]) -> R<Obj> {
        let mut i = 0;
        skip_ws(b, &mut i);
        match b.get(i) {
            Some(b'"') => Ok(self.shared_id(&string(b, &mut i)?)?.1),
            Some(b'{') => self.object(b, &mut i, 1, true),
            _ => self.value(b, &mut i, 0),
        }
    }

    /// One op (of line b, at offset `at` of the file): its facts, and with objects its row.
    fn op(&mut self, b: &[u8], line: Pre<'_>, at: u64) -> R<()> {
        let op = self.times.len();
        if op >= NONE as usize {
            return Err(Bail);
        }
        let op = op as u32;
        let t = line.time;
        let value = &b[line.value.0..line.value.1];
        if self.facts && self.regular {
            match (line.kind, &line.cap) {
                (Kind::Send, Cap::Str(id)) => {
                    let m = self.id(id)?;
                    let st = &mut self.states[m as usize];
                    match line.type_code {
                        0 if st.sent_op == NONE => st.sent_op = op,
                        1 if st.ack_op == NONE => st.ack_op = op,
                        2 => st.flags |= REFUSED,
                        3 => st.flags |= UNKNOWN,
                        _ => {}
                    }
                }
                (Kind::Deliver, Cap::DictId(id)) => {
                    let m = self.id(id)?;
                    let st = &mut self.states[m as usize];
                    st.count += 1;
                    if st.first_op == NONE || t < self.times[st.first_op as usize] {
                        st.first_op = op;
                    }
                    self.deliveries.push((m, at));
                }
                (Kind::Campaign, _) => match self.campaign_ids(value)? {
                    Some(ids) => {
                        for m in ids {
                            let st = &mut self.states[m as usize];
                            if st.camp_op == NONE {
                                st.camp_op = op;
                            }
                            match line.type_code {
                                1 if st.camp_ack_op == NONE => st.camp_ack_op = op,
                                2 => st.flags |= REFUSED,
                                3 => st.flags |= UNKNOWN,
                                _ => {}
                            }
                        }
                    }
                    None => self.regular = false,
                },
                (Kind::Other, _) => {
                    let items = [int(op as i64)?, self.name(&line.f)?,
                                 self.types[line.type_code].share(), self.value(value, &mut 0, 0)?,
                                 int(t)?];
                    self.others.push(tuple(items)?);
                }
                _ => self.regular = false,
            }
        }
        if self.objects {
            let row = [self.name(&line.process)?, self.types[line.type_code].share(),
                       self.name(&line.f)?, self.top_value(value)?, int(t)?,
                       number(&b[line.wall.0..line.wall.1], &mut 0)?];
            for (column, item) in self.columns.iter().zip(row) {
                column.push(item)?;
            }
        }
        self.times.push(t);
        Ok(())
    }

    /// One line (without its newline) at offset `at` of the file.
    fn line(&mut self, b: &[u8], at: u64) -> R<()> {
        match parse_line(b)? {
            Some(pre) => self.op(b, pre, at),
            None => Ok(()),
        }
    }

    fn read(&mut self, path: &PathBuf) -> R<()> {
        let mut file = File::open(path).map_err(|_| Bail)?;
        // room for about as many ops as a run's lines of ~100 bytes give, a third of them ids
        let guess = file.metadata().map(|m| m.len() / 100).unwrap_or(0).min(1 << 28) as usize;
        self.times.reserve(guess);
        if self.facts {
            self.ids.reserve(guess / 3);
            self.states.reserve(guess / 3);
        }
        let mut buf: Vec<u8> = Vec::new(); // the start of a line, carried over
        let mut block = vec![0u8; self.block];
        let mut offset: u64 = 0; // of block in the file
        loop {
            let n = loop {
                match file.read(&mut block) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(_) => return Err(Bail),
                }
            };
            if n == 0 {
                break;
            }
            let data = &block[..n];
            match data.iter().rposition(|&c| c == b'\n') {
                None => buf.extend_from_slice(data), // the middle of a long line
                Some(last) => {
                    if buf.is_empty() {
                        self.lines(&data[..=last], offset)?;
                    } else {
                        let at = offset - buf.len() as u64;
                        buf.extend_from_slice(&data[..=last]);
                        let whole = std::mem::take(&mut buf);
                        self.lines(&whole, at)?;
                    }
                    buf.extend_from_slice(&data[last + 1..]);
                }
            }
            offset += n as u64;
        }
        if !buf.is_empty() {
            // a last line without its newline: kept if it parses (else Python drops a torn
            // write, or reports the line)
            std::str::from_utf8(&buf).map_err(|_| Bail)?;
            let at = offset - buf.len() as u64;
            self.line(&buf, at)?;
        }
        Ok(())
    }

    /// Whole lines, each ending with a newline; `at` is the offset of data in the file.
    /// Reading and checking them (most of the work) is split between two threads, cut at a
    /// newline near the middle; their ops are then taken in order here, with the GIL.
    fn lines(&mut self, data: &[u8], at: u64) -> R<()> {
        let mid = data.len() / 2;
        let cut = match data[mid..].iter().position(|&c| c == b'\n') {
            Some(k) if mid + k + 1 < data.len() => mid + k + 1,
            _ => 0, // one line or so: no split
        };
        let (first, second) = if cut == 0 || !self.threads {
            (parse_lines(data)?, Vec::new())
        } else {
            let (a, b) = data.split_at(cut);
            let (first, second) = std::thread::scope(|scope| {
                let other = scope.spawn(|| parse_lines(b));
                let mine = parse_lines(a);
                (mine, other.join())
            });
            (first?, second.map_err(|_| Bail)??)
        };
        for (base, parsed) in [(0, first), (cut, second)] {
            for (start, end, pre) in parsed {
                self.op(&data[base + start..base + end], pre, at + (base + start) as u64)?;
            }
        }
        Ok(())
    }

    fn columns(&mut self) -> R<Obj> {
        list(self.columns.iter().map(|c| c.0.share()).collect())
    }

    /// (origin, end, table, uncertain, repeated, others): the table holds, per id, the
    /// time of its first send invoke (else of the first campaign op naming it), of its first
    /// send ok (else campaign ok), of its earliest delivery, and its number of deliveries
    /// (see IdTable); uncertain maps the ids invoked and not acked to "fail" (refused, never
    /// answered unknown) or "info"; repeated the ids delivered more than once to the
    /// (time, value) of their deliveries, in op order; others are (op, f, type, value, time)
    /// of the ops neither send, delivery nor campaign.
    fn facts(&mut self, path: &PathBuf) -> R<Obj> {
        let origin = self.times.iter().copied().min().unwrap_or(0);
        let end = self.times.iter().copied().max().unwrap_or(0);
        let n = self.states.len();
        let mut table = IdTable {
            ids: std::mem::take(&mut self.ids),
            times: Vec::with_capacity(n),
            count: Vec::with_capacity(n),
            sizes: [0; 4],
        };
        let uncertain = Obj::new(unsafe { ffi::PyDict_New() })?;
        let repeated = Obj::new(unsafe { ffi::PyDict_New() })?;
        let (info, fail) = (self.name(b"info")?, self.name(b"fail")?);
        let mut slot: Vec<u32> = Vec::new(); // per id: its index among the repeated ones
        let mut n_repeated = 0;
        let time = |op: u32| if op == NONE { None } else { Some(self.times[op as usize]) };
        for m in 0..n {
            let st = self.states[m];
            let invoke = if st.sent_op != NONE { st.sent_op } else { st.camp_op };
            let ack = if st.ack_op != NONE { st.ack_op } else { st.camp_ack_op };
            let first = if st.count > 0 { st.first_op } else { NONE };
            table.times.push([time(invoke), time(ack), time(first)]);
            table.count.push(st.count);
            for (k, op) in [invoke, ack, first].into_iter().enumerate() {
                table.sizes[k] += (op != NONE) as usize;
            }
            if invoke != NONE && ack == NONE {
                let refused = st.flags & (REFUSED | UNKNOWN) == REFUSED;
                set_item(&uncertain, &text(table.ids.bytes(m))?, if refused { &fail } else { &info })?;
            }
            if st.count > 1 {
                if slot.is_empty() {
                    slot = vec![NONE; n];
                }
                slot[m] = n_repeated;
                n_repeated += 1;
            }
        }
        table.sizes[3] = table.sizes[2];
        if n_repeated > 0 {
            let mut at: Vec<Vec<Obj>> = (0..n_repeated).map(|_| Vec::new()).collect();
            let mut reader = std::io::BufReader::new(File::open(path).map_err(|_| Bail)?);
            let deliveries = std::mem::take(&mut self.deliveries);
            for &(m, offset) in &deliveries {
                let k = slot[m as usize];
                if k != NONE {
                    at[k as usize].push(self.reread(&mut reader, offset)?);
                }
            }
            let ids = (0..n).filter(|&m| self.states[m].count > 1);
            for (m, items) in ids.zip(at) {
                set_item(&repeated, &text(table.ids.bytes(m))?, &list(items)?)?;
            }
        }
        let others = list(std::mem::take(&mut self.others))?;
        let table = Python::with_gil(|py| Py::new(py, table).map(|t| Obj(t.into_ptr())))
            .map_err(|_| Bail)?;
        tuple([int(origin)?, int(end)?, table, uncertain, repeated, others])
    }

    /// (time, value) of the delivery on the line at this offset, read again.
    fn reread(&mut self, r: &mut std::io::BufReader<File>, offset: u64) -> R<Obj> {
        use std::io::{BufRead, Seek, SeekFrom};
        r.seek(SeekFrom::Start(offset)).map_err(|_| Bail)?;
        let mut line = Vec::new();
        r.read_until(b'\n', &mut line).map_err(|_| Bail)?;
        if line.last() == Some(&b'\n') {
            line.pop();
        }
        std::str::from_utf8(&line).map_err(|_| Bail)?;
        let Some(pre) = parse_line(&line)? else {
            return Err(Bail); // the file changed under us
        };
        let value = self.top_value(&line[pre.value.0..pre.value.1])?;
        tuple([int(pre.time)?, value])
    }
}

fn tuple<const N: usize>(items: [Obj; N]) -> R<Obj> {
    let t = Obj::new(unsafe { ffi::PyTuple_New(N as ffi::Py_ssize_t) })?;
    for (i, item) in items.into_iter().enumerate() {
        unsafe { ffi::PyTuple_SET_ITEM(t.0, i as ffi::Py_ssize_t, item.into_ptr()) };
    }
    Ok(t)
}

/// scan(path, columns=True, threads=True, block=4 MiB) -> None | (columns, ops, facts)
///
/// threads: read and check lines on two threads; block: bytes read at a time (the tests make
/// both small, to cut lines and blocks everywhere).
/// With columns: (the six lists process, type, f, value, time, wall; ops; None).
/// Without: (None; ops; the facts, see `Scanner::facts`), every op checked as if built; the
/// facts are None when some send's value is not a string, some delivery's not a dict with a
/// string "id", or some campaign's not a dict with a list of string "ids" (Python then
/// derives them, and reports the op).
/// None: the file is not plain (see the module's doc); take the Python path.
#[pyfunction]
#[pyo3(signature = (path, columns = true, threads = true, block = 1 << 22))]
fn scan(py: Python<'_>, path: PathBuf, columns: bool, threads: bool, block: usize) -> PyResult<PyObject> {
    // a panic is a bug here, but the Python path can still read the file: say so, and let it
    let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| -> R<Obj> {
        let mut s = Scanner::new(columns, !columns, threads, block)?;
        s.read(&path)?;
        let none = || unsafe { Obj(ffi::Py_NewRef(ffi::Py_None())) };
        let facts = if !columns && s.regular { s.facts(&path)? } else { none() };
        let ops = int(s.times.len() as i64)?;
        let cols = if columns { s.columns()? } else { none() };
        tuple([cols, ops, facts])
    }));
    match out {
        Ok(Ok(t)) => Ok(unsafe { PyObject::from_owned_ptr(py, t.into_ptr()) }),
        Ok(Err(Bail)) => Ok(py.None()),
        Err(_) => {
            let warning = py.get_type::<pyo3::exceptions::PyRuntimeWarning>();
            PyErr::warn(py, &warning, c"harness._histfast failed (a bug, please report it): \
                        reading this history with the Python path", 1)?;
            Ok(py.None())
        }
    }
}

/// Per message id: the times it was invoked, acknowledged and first delivered, and how many
/// times it was delivered, kept in Rust; the facts' big mappings read it (`harness.checkers.
/// facts`), and the checkers' set queries run here instead of over Python dicts.
#[pyclass(module = "harness._histfast", frozen)]
struct IdTable {
    ids: Ids,
    times: Vec<[Option<i64>; 3]>, // invoked, acked, first delivery
    count: Vec<u32>,
    sizes: [usize; 4],            // ids with each of: invoked, acked, delivered (twice)
}

const COLUMNS: [&str; 4] = ["invoked", "acked", "first_delivery", "deliveries"];

impl IdTable {
    fn column(kind: &str) -> PyResult<usize> {
        COLUMNS.iter().position(|&c| c == kind).ok_or_else(|| {
            pyo3::exceptions::PyValueError::new_err(format!("no column {kind:?}"))
        })
    }

    fn value(&self, k: usize, m: usize) -> Option<i64> {
        if k < 3 {
            self.times[m][k]
        } else if self.count[m] > 0 {
            Some(self.count[m] as i64)
        } else {
            None
        }
    }

    fn id<'py>(&self, py: Python<'py>, m: usize) -> Bound<'py, pyo3::types::PyString> {
        // the ids' bytes were checked as UTF-8 when read
        pyo3::types::PyString::new(py, unsafe { std::str::from_utf8_unchecked(self.ids.bytes(m)) })
    }

    /// Ids, in first-seen order, whose latency (first delivery - acknowledgement) passes.
    fn latent<'a>(&'a self, keep: impl Fn(i128) -> bool + 'a) -> impl Iterator<Item = (usize, i128)> + 'a {
        self.times.iter().enumerate().filter_map(move |(m, t)| match (t[1], t[2]) {
            (Some(acked), Some(first)) => {
                let latency = first as i128 - acked as i128;
                keep(latency).then_some((m, latency))
            }
            _ => None,
        })
    }
}

#[pymethods]
impl IdTable {
    /// The value of id in a column ("invoked", "acked", "first_delivery", "deliveries"), or
    /// None.
    fn get(&self, kind: &str, id: &Bound<'_, PyAny>) -> PyResult<Option<i64>> {
        let k = Self::column(kind)?;
        let Ok(id) = id.downcast::<pyo3::types::PyString>() else {
            return Ok(None);
        };
        let Ok(s) = id.to_str() else {
            return Ok(None); // a lone surrogate: no id read from a file holds one
        };
        Ok(self.ids.get(s.as_bytes()).and_then(|m| self.value(k, m as usize)))
    }

    /// How many ids have a value in the column.
    fn size(&self, kind: &str) -> PyResult<usize> {
        Ok(self.sizes[Self::column(kind)?])
    }

    /// The column as a dict.
    fn dict<'py>(&self, py: Python<'py>, kind: &str) -> PyResult<Bound<'py, PyDict>> {
        let k = Self::column(kind)?;
        let d = PyDict::new(py);
        for m in 0..self.ids.len() {
            if let Some(v) = self.value(k, m) {
                d.set_item(self.id(py, m), v)?;
            }
        }
        Ok(d)
    }

    /// Ids acknowledged and never delivered.
    fn acked_undelivered<'py>(&self, py: Python<'py>) -> Vec<Bound<'py, pyo3::types::PyString>> {
        (0..self.ids.len())
            .filter(|&m| self.times[m][1].is_some() && self.count[m] == 0)
            .map(|m| self.id(py, m))
            .collect()
    }

    /// Ids delivered and never invoked.
    fn delivered_uninvoked<'py>(&self, py: Python<'py>) -> Vec<Bound<'py, pyo3::types::PyString>> {
        (0..self.ids.len())
            .filter(|&m| self.count[m] > 0 && self.times[m][0].is_none())
            .map(|m| self.id(py, m))
            .collect()
    }

    /// The latencies (first delivery - acknowledgement, ns) of the ids both acked and
    /// delivered, sorted.
    fn latencies(&self) -> Vec<i128> {
        let mut all: Vec<i128> = self.latent(|_| true).map(|(_, l)| l).collect();
        all.sort_unstable();
        all
    }

    /// The ids whose latency is above bound (ns).
    fn slower_than<'py>(&self, py: Python<'py>, bound: i128) -> Vec<Bound<'py, pyo3::types::PyString>> {
        self.latent(|l| l > bound).map(|(m, _)| self.id(py, m)).collect()
    }
}

#[pymodule]
fn _histfast(m: &Bound<'_, PyModule>) -> PyResult<()> {
    // what harness/history.py expects (_NATIVE_API): a stale build is then left unused
    m.add("API", 1)?;
    m.add_function(wrap_pyfunction!(scan, m)?)?;
    m.add_class::<IdTable>()?;
    Ok(())
}
