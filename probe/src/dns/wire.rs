//! DNS messages on the wire (RFC 1035, EDNS0 from RFC 6891): building one query and decoding
//! the response. Every read is bounds-checked and name decompression only follows pointers
//! backwards, so hostile input ends in a [`DecodeError`], never a panic or a loop.

use std::ops::Range;

pub const CLASS_IN: u16 = 1;
pub const TYPE_OPT: u16 = 41;
/// The EDNS0 UDP payload size of DNS Flag Day 2020: avoids IP fragmentation on any path.
pub const EDNS_UDP_SIZE: u16 = 1232;
pub const HEADER_LEN: usize = 12;
/// Longest name on the wire (RFC 1035 2.3.4), counting length bytes and the root label.
const MAX_NAME_WIRE_LEN: usize = 255;
/// A bound on pointers per name, besides the backwards-only rule that already ends every walk.
const MAX_POINTERS: usize = 64;

const FLAG_QR: u16 = 0x8000;
const FLAG_RD: u16 = 0x0100;
/// QR, AA, TC, RD, RA, Z, AD, CD: the second header word without opcode and rcode.
const FLAGS_MASK: u16 = 0x87F0;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("message ends inside the {0}")]
    Truncated(&'static str),
    #[error("name longer than 255 bytes")]
    NameTooLong,
    #[error("compression pointer does not point backwards")]
    BadPointer,
    #[error("too many compression pointers in one name")]
    TooManyPointers,
    #[error("unsupported label type 0x{0:02x}")]
    LabelType(u8),
    #[error("record data overruns the message")]
    RdataOverrun,
    #[error("more than one OPT record")]
    DuplicateOpt,
}

/// A domain name as its labels (raw bytes, as received).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Name(pub Vec<Vec<u8>>);

impl Name {
    /// Labels of a dotted ASCII name; empty (or ".") is the root.
    pub fn from_dotted(text: &str) -> Self {
        let text = text.strip_suffix('.').unwrap_or(text);
        if text.is_empty() {
            return Self::default();
        }
        Self(text.split('.').map(|l| l.as_bytes().to_vec()).collect())
    }

    /// DNS names compare without regard to ASCII case (RFC 4343).
    pub fn eq_ignore_case(&self, other: &Self) -> bool {
        self.0.len() == other.0.len()
            && self
                .0
                .iter()
                .zip(&other.0)
                .all(|(a, b)| a.eq_ignore_ascii_case(b))
    }

    fn encode(&self, out: &mut Vec<u8>) {
        for label in &self.0 {
            // Labels come from a validated spec (1..=63 bytes); clamp anyway so the length
            // byte can never be mistaken for a pointer.
            let label = label.get(..63).unwrap_or(label);
            out.push(label.len() as u8);
            out.extend_from_slice(label);
        }
        out.push(0);
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Question {
    pub name: Name,
    pub qtype: u16,
    pub qclass: u16,
}

/// The query we send, kept to recognise its response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub id: u16,
    pub question: Question,
    pub bytes: Vec<u8>,
}

impl Query {
    pub fn new(id: u16, name: &str, qtype: u16, recursion_desired: bool) -> Self {
        let question = Question {
            name: Name::from_dotted(name),
            qtype,
            qclass: CLASS_IN,
        };
        let mut bytes = Vec::with_capacity(64);
        bytes.extend_from_slice(&id.to_be_bytes());
        let flags = if recursion_desired { FLAG_RD } else { 0 };
        bytes.extend_from_slice(&flags.to_be_bytes());
        for count in [1u16, 0, 0, 1] {
            bytes.extend_from_slice(&count.to_be_bytes());
        }
        question.name.encode(&mut bytes);
        bytes.extend_from_slice(&qtype.to_be_bytes());
        bytes.extend_from_slice(&CLASS_IN.to_be_bytes());
        // OPT pseudo-record: root owner, our UDP size as class, extended rcode/version/flags 0.
        bytes.push(0);
        bytes.extend_from_slice(&TYPE_OPT.to_be_bytes());
        bytes.extend_from_slice(&EDNS_UDP_SIZE.to_be_bytes());
        bytes.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
        Self {
            id,
            question,
            bytes,
        }
    }
}

/// The header fields we use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub id: u16,
    /// The second word: flags, opcode and the low 4 bits of the rcode.
    pub word: u16,
    pub qdcount: u16,
    pub ancount: u16,
    pub nscount: u16,
    pub arcount: u16,
}

impl Header {
    pub fn parse(msg: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader { msg, pos: 0 };
        let header = Self {
            id: r.u16("header")?,
            word: r.u16("header")?,
            qdcount: r.u16("header")?,
            ancount: r.u16("header")?,
            nscount: r.u16("header")?,
            arcount: r.u16("header")?,
        };
        Ok(header)
    }

    pub fn is_response(&self) -> bool {
        self.word & FLAG_QR != 0
    }

    pub fn flags(&self) -> u16 {
        self.word & FLAGS_MASK
    }
}

/// One resource record; its RDATA stays in the message (names in it may point elsewhere).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub name: Name,
    pub rtype: u16,
    pub class: u16,
    pub ttl: u32,
    pub rdata: Range<usize>,
}

/// A decoded response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub header: Header,
    pub question: Option<Question>,
    pub answers: Vec<Record>,
    /// Header rcode extended by the OPT record's upper 8 bits (RFC 6891 6.1.3): 12 bits.
    pub rcode: u16,
}

/// The header and first question: enough to tell whether a response answers our query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Front {
    pub header: Header,
    pub question: Option<Question>,
    /// Where the records after the question section start.
    end: usize,
}

pub fn decode_front(msg: &[u8]) -> Result<Front, DecodeError> {
    let header = Header::parse(msg)?;
    let mut r = Reader {
        msg,
        pos: HEADER_LEN,
    };
    let mut question = None;
    for _ in 0..header.qdcount {
        let name = r.name()?;
        let q = Question {
            name,
            qtype: r.u16("question")?,
            qclass: r.u16("question")?,
        };
        question.get_or_insert(q);
    }
    Ok(Front {
        header,
        question,
        end: r.pos,
    })
}

/// Decodes the records after the question section, keeping at most `max_answers` answers
/// (the rest are still walked, to find the OPT record).
pub fn decode_rest(msg: &[u8], front: Front, max_answers: usize) -> Result<Message, DecodeError> {
    let mut r = Reader {
        msg,
        pos: front.end,
    };
    let mut answers = Vec::new();
    for _ in 0..front.header.ancount {
        let record = r.record()?;
        if answers.len() < max_answers {
            answers.push(record);
        }
    }
    for _ in 0..front.header.nscount {
        r.record()?;
    }
    let mut extended = None;
    for _ in 0..front.header.arcount {
        let record = r.record()?;
        if record.rtype == TYPE_OPT {
            if extended.is_some() {
                return Err(DecodeError::DuplicateOpt);
            }
            extended = Some((record.ttl >> 24) as u16);
        }
    }
    let rcode = (extended.unwrap_or(0) << 4) | (front.header.word & 0x000F);
    Ok(Message {
        header: front.header,
        question: front.question,
        answers,
        rcode,
    })
}

/// A cursor over a message.
#[derive(Debug, Clone, Copy)]
pub struct Reader<'a> {
    pub msg: &'a [u8],
    pub pos: usize,
}

impl Reader<'_> {
    pub fn u8(&mut self, what: &'static str) -> Result<u8, DecodeError> {
        let byte = *self.msg.get(self.pos).ok_or(DecodeError::Truncated(what))?;
        self.pos += 1;
        Ok(byte)
    }

    pub fn u16(&mut self, what: &'static str) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes([self.u8(what)?, self.u8(what)?]))
    }

    pub fn u32(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        Ok(u32::from(self.u16(what)?) << 16 | u32::from(self.u16(what)?))
    }

    pub fn bytes(&mut self, len: usize, what: &'static str) -> Result<&[u8], DecodeError> {
        let end = self
            .pos
            .checked_add(len)
            .ok_or(DecodeError::Truncated(what))?;
        let bytes = self
            .msg
            .get(self.pos..end)
            .ok_or(DecodeError::Truncated(what))?;
        self.pos = end;
        Ok(bytes)
    }

    /// A possibly compressed name. A pointer must point before the label where it appears,
    /// so every walk strictly moves towards the start of the message and ends.
    pub fn name(&mut self) -> Result<Name, DecodeError> {
        let mut labels = Vec::new();
        let mut wire_len = 1usize; // the root label
        let mut at = self.pos;
        let mut resume = None;
        let mut pointers = 0;
        loop {
            let len = *self.msg.get(at).ok_or(DecodeError::Truncated("name"))?;
            match len & 0xC0 {
                0x00 if len == 0 => {
                    self.pos = resume.unwrap_or(at + 1);
                    return Ok(Name(labels));
                }
                0x00 => {
                    let start = at + 1;
                    let label = self
                        .msg
                        .get(start..start + usize::from(len))
                        .ok_or(DecodeError::Truncated("name"))?;
                    wire_len += 1 + label.len();
                    if wire_len > MAX_NAME_WIRE_LEN {
                        return Err(DecodeError::NameTooLong);
                    }
                    labels.push(label.to_vec());
                    at = start + label.len();
                }
                0xC0 => {
                    let low = *self.msg.get(at + 1).ok_or(DecodeError::Truncated("name"))?;
                    let target = usize::from(u16::from_be_bytes([len & 0x3F, low]));
                    if target >= at {
                        return Err(DecodeError::BadPointer);
                    }
                    pointers += 1;
                    if pointers > MAX_POINTERS {
                        return Err(DecodeError::TooManyPointers);
                    }
                    resume.get_or_insert(at + 2);
                    at = target;
                }
                _ => return Err(DecodeError::LabelType(len)),
            }
        }
    }

    fn record(&mut self) -> Result<Record, DecodeError> {
        let name = self.name()?;
        let rtype = self.u16("record header")?;
        let class = self.u16("record header")?;
        let ttl = self.u32("record header")?;
        let len = usize::from(self.u16("record header")?);
        let start = self.pos;
        self.bytes(len, "record data")
            .map_err(|_| DecodeError::RdataOverrun)?;
        Ok(Record {
            name,
            rtype,
            class,
            ttl,
            rdata: start..start + len,
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A response builder for tests: header, the question, then raw records.
    pub(crate) fn response(id: u16, word: u16, question: &[u8], records: &[&[u8]]) -> Vec<u8> {
        response_counts(id, word, question, records, [records.len() as u16, 0, 0])
    }

    pub(crate) fn response_counts(
        id: u16,
        word: u16,
        question: &[u8],
        records: &[&[u8]],
        counts: [u16; 3],
    ) -> Vec<u8> {
        let mut msg = Vec::new();
        msg.extend_from_slice(&id.to_be_bytes());
        msg.extend_from_slice(&word.to_be_bytes());
        msg.extend_from_slice(&1u16.to_be_bytes());
        for c in counts {
            msg.extend_from_slice(&c.to_be_bytes());
        }
        msg.extend_from_slice(question);
        for r in records {
            msg.extend_from_slice(r);
        }
        msg
    }

    /// `dual.lab AAAA IN` as a question section.
    pub(crate) fn question(qtype: u16) -> Vec<u8> {
        let mut q = b"\x04dual\x03lab\x00".to_vec();
        q.extend_from_slice(&qtype.to_be_bytes());
        q.extend_from_slice(&CLASS_IN.to_be_bytes());
        q
    }

    /// A record whose owner is a pointer to the question name (offset 12).
    pub(crate) fn record(rtype: u16, ttl: u32, rdata: &[u8]) -> Vec<u8> {
        let mut r = vec![0xC0, 12];
        r.extend_from_slice(&rtype.to_be_bytes());
        r.extend_from_slice(&CLASS_IN.to_be_bytes());
        r.extend_from_slice(&ttl.to_be_bytes());
        r.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        r.extend_from_slice(rdata);
        r
    }

    fn decode(msg: &[u8]) -> Result<Message, DecodeError> {
        decode_rest(msg, decode_front(msg)?, 256)
    }

    #[test]
    fn query_layout() {
        let q = Query::new(0xabcd, "Dual.lab", 28, true);
        assert_eq!(
            q.bytes[..12],
            [0xab, 0xcd, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 1]
        );
        assert_eq!(&q.bytes[12..22], b"\x04Dual\x03lab\x00");
        assert_eq!(q.bytes[22..26], [0, 28, 0, 1]);
        assert_eq!(q.bytes[26..], [0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0]);
        let root = Query::new(1, "", 2, false);
        assert_eq!(root.bytes[2..4], [0, 0]);
        assert_eq!(root.bytes[12..17], [0, 0, 2, 0, 1]);
        // The query decodes as a message with our question.
        let front = decode_front(&q.bytes).unwrap();
        assert!(!front.header.is_response());
        assert!(
            front
                .question
                .unwrap()
                .name
                .eq_ignore_case(&q.question.name)
        );
    }

    #[test]
    fn compressed_names_and_extended_rcode() {
        let mut opt = vec![0, 0, 41, 0x04, 0xd0, 0x01, 0, 0, 0, 0, 0];
        let mut records = vec![record(
            28,
            60,
            &[0x20, 1, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
        )];
        // A CNAME to "www" + pointer to "dual.lab".
        records.push(record(5, 0, &[3, b'w', b'w', b'w', 0xC0, 12]));
        let refs: Vec<&[u8]> = records.iter().map(Vec::as_slice).collect();
        let mut msg = response_counts(7, 0x8183, &question(28), &refs, [2, 0, 1]);
        msg.append(&mut opt);
        let m = decode(&msg).unwrap();
        assert_eq!(m.header.id, 7);
        assert_eq!(m.header.flags(), 0x8180);
        // Extended rcode 1 << 4 | 3 = 19.
        assert_eq!(m.rcode, 19);
        assert_eq!(m.answers.len(), 2);
        assert_eq!(m.answers[0].name, Name::from_dotted("dual.lab"));
        assert_eq!(m.answers[1].rtype, 5);
    }

    #[test]
    fn pointer_loops_and_forward_pointers_are_refused() {
        // Owner name pointing to itself.
        let mut msg = response(1, 0x8180, &question(1), &[]);
        msg[7] = 1; // ancount
        let at = msg.len();
        msg.extend_from_slice(&[0xC0 | (at >> 8) as u8, at as u8]);
        msg.extend_from_slice(&[0, 1, 0, 1, 0, 0, 0, 0, 0, 0]);
        assert_eq!(decode(&msg), Err(DecodeError::BadPointer));
        // Two pointers pointing at each other: the second one points forward.
        let mut msg = response(1, 0x8180, &question(1), &[]);
        msg[7] = 1;
        let at = msg.len();
        msg.extend_from_slice(&[0xC0, (at + 2) as u8, 0xC0, at as u8]);
        assert_eq!(decode(&msg), Err(DecodeError::BadPointer));
        // A chain of backwards pointers longer than the bound.
        let mut msg = response(1, 0x8180, &question(1), &[]);
        msg[7] = 1;
        let start = msg.len();
        msg.extend_from_slice(&[0xC0, 12]);
        for i in 0..100 {
            let previous = start + 2 * i;
            msg.extend_from_slice(&[0xC0 | (previous >> 8) as u8, previous as u8]);
        }
        let last = msg.len() - 2;
        let mut r = Reader {
            msg: &msg,
            pos: last,
        };
        assert_eq!(r.name(), Err(DecodeError::TooManyPointers));
    }

    #[test]
    fn overlong_names_and_label_types_are_refused() {
        let mut msg = response(1, 0x8180, &question(1), &[]);
        msg[7] = 1;
        for _ in 0..5 {
            msg.push(63);
            msg.extend_from_slice(&[b'a'; 63]);
        }
        msg.push(0);
        assert_eq!(decode(&msg), Err(DecodeError::NameTooLong));
        let mut msg = response(1, 0x8180, &question(1), &[]);
        msg[7] = 1;
        msg.push(0x41);
        assert_eq!(decode(&msg), Err(DecodeError::LabelType(0x41)));
    }

    #[test]
    fn every_truncation_is_an_error() {
        let rec = record(1, 5, &[10, 0, 0, 1]);
        let msg = response(9, 0x8580, &question(1), &[&rec]);
        assert!(decode(&msg).is_ok());
        for end in 0..msg.len() {
            assert!(decode(&msg[..end]).is_err(), "{end}");
        }
    }

    #[test]
    fn duplicate_opt_is_refused() {
        let opt = [0u8, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0];
        let msg = response_counts(1, 0x8180, &question(1), &[&opt, &opt], [0, 0, 2]);
        assert_eq!(decode(&msg), Err(DecodeError::DuplicateOpt));
    }
}
