//! The bundled models, one file each. See [`super::model::Model`].

pub mod kv;
pub mod mutex;
pub mod register;
pub mod set;
