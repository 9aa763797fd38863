"""Pages of the backups app. They read rows only: every check, run and restore they ask for is
queued on the workers (the web process never waits on XAPI or a backup), except the remote
form's write test, which a person asks for, with a time limit.

Every view needs a login and the agreed permission (view_* to see, add/change/delete to edit,
``backups.run_backupjob`` to run, ``backups.restore_restorepoint`` to restore): a refusal is a
403, and the pages only show the buttons the user may use.
"""
