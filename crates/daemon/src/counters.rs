//! Named event counters: [`counters!`](crate::counters!) declares an enum
//! `Counter` of them and a `Counters` table of their values.

/// Declares `pub enum Counter` (one variant per counter, with its name and
/// doc) and `pub struct Counters` (their saturating values):
///
/// ```
/// l3roamd_daemon::counters! {
///     "One counter of this daemon, shown by `GetStatus`.";
///     Sent => "sent": "Packets sent.",
///     Dropped => "dropped": "Packets dropped.",
/// }
/// let mut c = Counters::default();
/// c.count(Counter::Sent);
/// c.add(Counter::Dropped, 2);
/// assert_eq!(c.list(), [("sent", 1), ("dropped", 2)]);
/// ```
#[macro_export]
macro_rules! counters {
    ($enum_doc:literal; $($variant:ident => $name:literal: $doc:literal,)*) => {
        #[doc = $enum_doc]
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Counter {
            $(#[doc = $doc] $variant,)*
        }

        impl Counter {
            /// Every counter, in the order they are listed.
            pub const ALL: &'static [Counter] = &[$(Counter::$variant,)*];

            /// Its name as shown to operators.
            pub const fn name(self) -> &'static str {
                match self {
                    $(Counter::$variant => $name,)*
                }
            }
        }

        /// The values of every [`Counter`].
        #[derive(Debug, Clone)]
        pub struct Counters {
            values: [u64; Counter::ALL.len()],
        }

        impl Default for Counters {
            fn default() -> Self {
                Counters {
                    values: [0; Counter::ALL.len()],
                }
            }
        }

        impl Counters {
            /// Adds one to `counter`.
            pub fn count(&mut self, counter: Counter) {
                self.add(counter, 1);
            }

            /// Adds `n` to `counter`.
            pub fn add(&mut self, counter: Counter, n: u64) {
                if let Some(v) = self.values.get_mut(counter as usize) {
                    *v = v.saturating_add(n);
                }
            }

            /// The value of `counter`.
            pub fn get(&self, counter: Counter) -> u64 {
                self.values.get(counter as usize).copied().unwrap_or(0)
            }

            /// Every counter with its name, zeros included.
            pub fn list(&self) -> Vec<(&'static str, u64)> {
                Counter::ALL
                    .iter()
                    .map(|c| (c.name(), self.get(*c)))
                    .collect()
            }
        }
    };
}

#[cfg(test)]
mod tests {
    crate::counters! {
        "A test counter.";
        One => "one": "The first.",
        Two => "two": "The second.",
    }

    #[test]
    fn counts_saturate_and_list_in_order() {
        let mut c = Counters::default();
        c.count(Counter::One);
        c.add(Counter::Two, u64::MAX);
        c.count(Counter::Two);
        assert_eq!(c.get(Counter::One), 1);
        assert_eq!(c.list(), [("one", 1), ("two", u64::MAX)]);
        assert_eq!(Counter::ALL.len(), 2);
    }
}
