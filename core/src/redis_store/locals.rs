//! State a capability keeps per store, by type, without the store knowing the type.

use std::any::Any;
use std::sync::{Arc, Mutex, PoisonError};

/// One value per type, created on first use. A handful of entries at most, so a list
/// searched by downcast beats a map.
#[derive(Default)]
pub(crate) struct Locals {
    values: Mutex<Vec<Arc<dyn Any + Send + Sync>>>,
}

impl Locals {
    /// The value of type `S`, created with `S::default()` the first time.
    pub(crate) fn get_or_default<S: Default + Send + Sync + 'static>(&self) -> Arc<S> {
        let mut values = self.values.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(found) = values
            .iter()
            .find_map(|value| Arc::clone(value).downcast::<S>().ok())
        {
            return found;
        }
        let created = Arc::new(S::default());
        values.push(Arc::clone(&created) as Arc<dyn Any + Send + Sync>);
        created
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[test]
    fn one_value_per_type() {
        let locals = Locals::default();
        locals
            .get_or_default::<AtomicU32>()
            .store(7, Ordering::Relaxed);
        assert_eq!(
            locals.get_or_default::<AtomicU32>().load(Ordering::Relaxed),
            7
        );
        assert_eq!(*locals.get_or_default::<String>(), "");
    }
}
