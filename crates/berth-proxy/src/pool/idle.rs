//! A bounded first-in first-out set of idle connections that takes memory only for the
//! connections it holds. A fixed-size ring allocated up front costs every target its
//! whole capacity (several KiB) even when it holds one connection or none, which adds
//! up to megabytes in a group of a thousand targets; this one starts empty and grows.

use std::collections::VecDeque;
use std::sync::Mutex;

pub(crate) struct IdleQueue<T> {
    items: Mutex<VecDeque<T>>,
    cap: usize,
}

impl<T> IdleQueue<T> {
    /// An empty queue that holds at most `cap` items.
    pub(crate) fn new(cap: usize) -> IdleQueue<T> {
        IdleQueue {
            items: Mutex::new(VecDeque::new()),
            cap,
        }
    }

    /// Adds `item` at the back, or gives it back when the queue is full.
    pub(crate) fn push(&self, item: T) -> Result<(), T> {
        let mut q = self.items.lock().unwrap_or_else(|e| e.into_inner());
        if q.len() >= self.cap {
            return Err(item);
        }
        q.push_back(item);
        Ok(())
    }

    /// Takes the item at the front (the one idle longest).
    pub(crate) fn pop(&self) -> Option<T> {
        self.items
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::IdleQueue;

    #[test]
    fn first_in_first_out_within_the_bound() {
        let q = IdleQueue::new(2);
        assert_eq!(q.push(1), Ok(()));
        assert_eq!(q.push(2), Ok(()));
        assert_eq!(q.push(3), Err(3), "a full queue gives the item back");
        assert_eq!(q.pop(), Some(1));
        assert_eq!(q.push(4), Ok(()));
        assert_eq!(q.pop(), Some(2));
        assert_eq!(q.pop(), Some(4));
        assert_eq!(q.pop(), None);
    }

    #[test]
    fn an_empty_queue_allocates_nothing() {
        let q: IdleQueue<u64> = IdleQueue::new(256);
        assert_eq!(q.items.lock().unwrap().capacity(), 0);
        q.push(1).unwrap();
        assert!(q.items.lock().unwrap().capacity() < 256);
    }
}
