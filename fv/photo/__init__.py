"""A real photo in and out (`fv render`): nothing here is imported by fv.engine, which renders model-range faces.

    errors           FaceError, the root of a photo's errors (no face, unreadable image, unknown mode, AU readout)
    image            read_image: any photo file -> uint8 RGB, EXIF-rotated, huge ones shrunk while decoded
    geometry         the eye template every face fv shows a model sits on, and the alignment maths
    aligner          FaceAligner: dlib detection, 68 landmarks, aligned crops of photos and clips
    paste            the face and mouth masks, pasting a crop or a face video back into the photo
    face             PhotoFace / load_face: the generator's input crop and the face at its own resolution
    standin          the synthetic stand-in face (cached per size and generator version)
    au_readout       action units read from the model's frames of the stand-in (python -m fv.photo.au_readout)
    standin_motion   the synthetic generator's motion field, at those action units, moved onto the photo
    motion_transfer  dense optical-flow transfer, thin-plate splines, backward warps
    modes            the registry of render modes (transfer, transfer-self, pixels, flow, flow-standin)
"""
