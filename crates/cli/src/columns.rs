//! What each column of each table means: the text after the options in
//! `--help` of the command that prints it. A test runs every table and
//! checks that each of its headers is explained here.

pub const VOLUMES: &str = "\
Columns:
  LABEL          the volume's label
  LIBRARY        the library that holds it
  MEDIA          its media type (its timing model: rate, file mark, load and locate times)
  STATE          blank (never written), appendable (takes writes), full, readonly (read, never written:
                 an administrator's choice or worn), noaccess (neither: a fault), shelf (out of the library)
  FAMILY         the file family bound at its first write (storage_group.file_family.wrapper)
  USED/CAPACITY  bytes written (end of data) against its capacity
  FILES          tape files on it (packages and single files)
  MOUNTS         times it was mounted (wear: past [tape] mount_limit it turns readonly)
  EFF            modelled efficiency: bytes moved over what its busy time would move at the media's rate
                 (mounts, locates and file marks lower it; small files written one by one make it tiny)";

pub const VOLUME_SHOW: &str = "\
Columns of the tape files:
  FILE      the tape file's sequence number on the volume
  POSITION  its byte position on the volume
  SIZE      its size in bytes (a package: its members, the manifest and the tar headers)
  ADLER32   its checksum, checked on every read
  MEMBERS   files in it (1: a file written alone)
  PACKAGE   the package's id (`bale package show ID`)";

pub const DRIVES: &str = "\
Columns:
  DRIVE     the drive's name (library-dN)
  LIBRARY   the library it serves
  STATE     online (scheduled) or offline (an administrator's choice or a failure)
  ACTIVITY  idle, busy (mounting, positioning, writing or reading) or offline
  VOLUME    the volume mounted in it, if any
  MOUNTS    volumes it has mounted
  WRITTEN   bytes it has written
  EFF       modelled efficiency: bytes moved over what its busy time would move at the media's rate";

pub const ALARMS: &str = "\
Columns:
  ID         the alarm's id (`bale alarm ack ID`)
  SEVERITY   warning or error
  COMPONENT  what it is about: a volume, a drive, a worker, the cache, archiving
  COUNT      times it was raised (repeats fold into one alarm)
  FIRST      when it was first raised (UTC)
  LAST       when it was raised last
  MESSAGE    what happened and what to look at (acknowledged ones: by whom and when)";

pub const WORKERS: &str = "\
Columns:
  WORKER            the background worker (committer, purger, stager, drive lib1-d1, ...)
  STATE             busy, idle, throttled, stopping, done, dead (it panicked: an alarm is raised and
                    the node is not ready) or aborted (it missed the shutdown deadline)
  CALLS             units of work done
  ERRORS            units of work that failed (retried after a backoff), with the last error below
  DOING / COUNTERS  what it does now, and its own counters
  LAST ERROR        the last error of a unit of work, if any, and when";

pub const QUEUE: &str = "\
OPEN POOLS: files waiting to be aggregated, one line per pool:
  POOL             the pool's key: the rule and the family (and the rule's grouping)
  FILES            files waiting in it
  BYTES            their bytes
  OLDEST           age of its oldest file
  NEAREST TRIGGER  the trigger closest to firing (size, files or wait) and how near, in %
ARCHIVE JOBS: closed pools and files going to tape on their own, by state and family:
  STATE    queued (waiting for or being written) or failed (retried by `bale queue retry`)
  LIBRARY  where they are written
  FAMILY   their file family
  JOBS     archive jobs
  FILES    files in them
  BYTES    their bytes
  OLDEST   age of the oldest job
With --all, one line per job:
  JOB           the job's id
  TRY           attempts so far
  AGE           age of the job
  POOL / ERROR  the pool it was closed from, or its last error";

pub const PACKAGES: &str = "\
Columns:
  PACKAGE  the package's id (`bale package show ID`)
  VOLUME   the volume it is on
  FILE     its tape file number on the volume
  SIZE     its size in bytes
  ADLER32  its checksum
  MEMBERS  files in it
  DEAD     members whose files were deleted since (their bytes stay on tape)";

pub const PACKAGE_SHOW: &str = "\
Columns of the members:
  OFFSET   where the member's data starts in the package (a byte offset: the tar header is before it)
  SIZE     its size in bytes
  ADLER32  its checksum, checked when it is staged
  PATH     its file's path now (a deleted file shows as such)";

pub const QUOTA: &str = "\
Columns:
  STORAGE GROUP  the storage group (a directory tag)
  FILES          files the group holds (each counted once, however many tape copies)
  FILE QUOTA     the most files it may hold (- for no limit)
  BYTES          bytes it holds
  BYTE QUOTA     the most bytes it may hold
  VOLUMES        per library: volumes the group's families use, and the most it may take";

pub const TOKENS: &str = "\
Columns of `token list`:
  ID       the token's id (`bale token revoke ID`; the secret is never shown again)
  USER     the user it authenticates as
  GROUP    that user's group
  ADMIN    true for an administrator's token
  REVOKED  when it was revoked, if it was
  COMMENT  what it was made for (--comment)";

pub const CACHE: &str = "\
Rows and columns:
  cached     files whose data is in the cache: FILES and BYTES
  pinned     of those, kept by a pin or a stage request
  purgeable  of those, on tape and not pinned: the purger may remove their copies
  capacity   [cache] capacity, else the filesystem's size
  used       bytes of the cached files, and their share of the capacity
  high mark  above it the purger removes what is safe on tape ([cache] purge_high)...
  low mark   ...down to this ([cache] purge_low)
  fs free    free space of the cache's filesystem";
