//! Test images, made here rather than downloaded: real encoded photos with the metadata blocks
//! phones write, and the broken and hostile files a worker must survive.
