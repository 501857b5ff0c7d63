//! The tag index: which entries carry which tag, kept out of line so untagged
//! entries pay for nothing but a handle in their slot.
//!
//! Each tag name is interned once with the list of its members; each tagged entry
//! owns a small record of `(tag, position in that tag's member list)` links, so
//! unlinking an entry is O(its tags) (a `swap_remove` plus one position fix-up per
//! tag) and listing or dropping a tag's entries is O(entries with that tag).

use hashbrown::{DefaultHashBuilder, HashTable};
use std::hash::BuildHasher;

#[derive(Clone, Copy, Debug)]
struct Link {
    tag: u32,
    /// Index of the entry's record in `Tag::members`.
    pos: u32,
}

#[derive(Debug)]
struct Tag {
    name: Box<str>,
    /// Records (indices into `TagIndex::records`) of the entries with this tag.
    members: Vec<u32>,
}

#[derive(Debug, Default)]
struct Record {
    slot: u32,
    links: Box<[Link]>,
}

/// Tags of the entries of one store; entries are named by their slot number.
#[derive(Debug, Default)]
pub struct TagIndex {
    hasher: DefaultHashBuilder,
    /// Tag ids, hashed by name.
    ids: HashTable<u32>,
    tags: Vec<Tag>,
    free_tags: Vec<u32>,
    records: Vec<Record>,
    free_records: Vec<u32>,
}

impl TagIndex {
    fn find(&self, name: &str) -> Option<u32> {
        let hash = self.hasher.hash_one(name);
        self.ids
            .find(hash, |&id| &*self.tags[id as usize].name == name)
            .copied()
    }

    fn intern(&mut self, name: &str) -> u32 {
        if let Some(id) = self.find(name) {
            return id;
        }
        let tag = Tag {
            name: name.into(),
            members: Vec::new(),
        };
        let id = match self.free_tags.pop() {
            Some(id) => {
                self.tags[id as usize] = tag;
                id
            }
            None => {
                self.tags.push(tag);
                (self.tags.len() - 1) as u32
            }
        };
        let hash = self.hasher.hash_one(name);
        let (tags, hasher) = (&self.tags, &self.hasher);
        self.ids
            .insert_unique(hash, id, |&id| hasher.hash_one(&*tags[id as usize].name));
        id
    }

    /// Records that the entry in `slot` carries `names` (a repeated name counts once);
    /// returns the handle to give back to [`TagIndex::detach`].
    pub fn attach<'a>(&mut self, slot: u32, names: impl IntoIterator<Item = &'a str>) -> u32 {
        let record = match self.free_records.pop() {
            Some(r) => r,
            None => {
                self.records.push(Record::default());
                (self.records.len() - 1) as u32
            }
        };
        let mut links = Vec::new();
        for name in names {
            let tag = self.intern(name);
            let members = &mut self.tags[tag as usize].members;
            // A repeated name finds this very record last in its member list.
            if members.last() == Some(&record) {
                continue;
            }
            links.push(Link {
                tag,
                pos: members.len() as u32,
            });
            members.push(record);
        }
        self.records[record as usize] = Record {
            slot,
            links: links.into_boxed_slice(),
        };
        record
    }

    /// Forgets the tags of the entry behind `record`; a tag left with no entry is dropped.
    pub fn detach(&mut self, record: u32) {
        let links = std::mem::take(&mut self.records[record as usize].links);
        for link in links.iter() {
            let members = &mut self.tags[link.tag as usize].members;
            members.swap_remove(link.pos as usize);
            if let Some(&moved) = members.get(link.pos as usize) {
                let moved_links = &mut self.records[moved as usize].links;
                if let Some(l) = moved_links.iter_mut().find(|l| l.tag == link.tag) {
                    l.pos = link.pos;
                }
            } else if members.is_empty() {
                self.drop_tag(link.tag);
            }
        }
        self.free_records.push(record);
    }

    fn drop_tag(&mut self, tag: u32) {
        let name = std::mem::take(&mut self.tags[tag as usize].name);
        let hash = self.hasher.hash_one(&*name);
        if let Ok(entry) = self.ids.find_entry(hash, |&id| id == tag) {
            entry.remove();
        }
        self.tags[tag as usize].members = Vec::new();
        self.free_tags.push(tag);
    }

    /// Slots of the entries carrying `name`, in no particular order.
    pub fn slots(&self, name: &str) -> Vec<u32> {
        match self.find(name) {
            Some(tag) => self.tags[tag as usize]
                .members
                .iter()
                .map(|&r| self.records[r as usize].slot)
                .collect(),
            None => Vec::new(),
        }
    }

    /// Number of distinct tags carried by at least one entry.
    pub fn tag_count(&self) -> usize {
        self.ids.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sorted(mut v: Vec<u32>) -> Vec<u32> {
        v.sort_unstable();
        v
    }

    #[test]
    fn lists_the_slots_of_a_tag() {
        let mut idx = TagIndex::default();
        idx.attach(1, ["a", "b"]);
        idx.attach(2, ["b"]);
        idx.attach(3, ["c", "a"]);
        assert_eq!(sorted(idx.slots("a")), vec![1, 3]);
        assert_eq!(sorted(idx.slots("b")), vec![1, 2]);
        assert_eq!(idx.slots("zzz"), Vec::<u32>::new());
        assert_eq!(idx.tag_count(), 3);
    }

    #[test]
    fn a_repeated_name_links_once() {
        let mut idx = TagIndex::default();
        let r = idx.attach(7, ["a", "a", "b", "a"]);
        assert_eq!(idx.slots("a"), vec![7]);
        idx.detach(r);
        assert_eq!(idx.tag_count(), 0);
    }

    #[test]
    fn detach_fixes_the_moved_member_and_drops_empty_tags() {
        let mut idx = TagIndex::default();
        let r1 = idx.attach(1, ["t", "u"]);
        let r2 = idx.attach(2, ["u", "t"]);
        let r3 = idx.attach(3, ["t"]);
        idx.detach(r1);
        assert_eq!(sorted(idx.slots("t")), vec![2, 3]);
        assert_eq!(idx.slots("u"), vec![2]);
        idx.detach(r3);
        assert_eq!(idx.slots("t"), vec![2]);
        idx.detach(r2);
        assert_eq!(idx.tag_count(), 0);
        assert!(idx.slots("t").is_empty());
        // Freed tag ids and records are reused.
        idx.attach(9, ["v"]);
        assert_eq!(idx.slots("v"), vec![9]);
        assert_eq!(idx.tags.len(), 2);
        assert_eq!(idx.records.len(), 3);
    }
}
