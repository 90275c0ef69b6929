//! Reflector caches over the namespaces the operator serves: one store per watched namespace
//! (or one for all), looked up as if they were one. A reflector store cannot be shared by
//! several watches (each relist replaces the store's whole content), hence one per namespace.

use std::collections::HashMap;
use std::sync::Arc;

use kube::Resource;
use kube::runtime::reflector::{ObjectRef, Store};

/// Stores keyed by the namespace they cover (`None` = every namespace).
pub struct ScopedStore<K: Resource<DynamicType = ()> + Clone + 'static> {
    stores: HashMap<Option<String>, Store<K>>,
}

impl<K: Resource<DynamicType = ()> + Clone + 'static> Clone for ScopedStore<K> {
    fn clone(&self) -> Self {
        Self {
            stores: self.stores.clone(),
        }
    }
}

impl<K: Resource<DynamicType = ()> + Clone + 'static> Default for ScopedStore<K> {
    fn default() -> Self {
        Self {
            stores: HashMap::new(),
        }
    }
}

impl<K: Resource<DynamicType = ()> + Clone + 'static> ScopedStore<K> {
    pub fn insert(&mut self, namespace: Option<String>, store: Store<K>) {
        self.stores.insert(namespace, store);
    }

    /// The object, from the store that covers its namespace.
    pub fn get(&self, key: &ObjectRef<K>) -> Option<Arc<K>> {
        self.stores
            .get(&key.namespace)
            .or_else(|| self.stores.get(&None))
            .and_then(|store| store.get(key))
    }

    /// Every cached object.
    pub fn state(&self) -> Vec<Arc<K>> {
        self.stores.values().flat_map(Store::state).collect()
    }
}
