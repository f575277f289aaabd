"""Call flows: the no-code routing layer (DESIGN.md "routing/").

What it is for: business owners describe how calls are answered as a versioned flow
document; this package validates it, stores its versions, evaluates it purely for every
inbound call, and simulates calls before anyone publishes a change.

Where things are (STYLE #11):

- ``model.py``      the flow document (Pydantic) and the ``flows``/``flow_versions`` tables
- ``hours.py``      business hours, holidays, closed dates, exceptions (time zones, DST)
- ``directory.py``  who exists (extensions, users, groups, roles, mailboxes) as a snapshot
- ``context.py``    ``CallContext``: everything one call's routing may know
- ``validate.py``   plain-words problems, naming the flow and the node
- ``actions.py``    what routing asks the engine to do, outcomes, the path (CDR)
- ``evaluate.py``   pure ``start``/``advance``
- ``shield.py``     the technician shield and ``start_call`` (every inbound call starts here)
- ``templates.py``  the front-desk flow every tenant starts with, and after-hours
- ``versions.py``   draft, publish, roll back; ``load_flow`` for the engine
- ``simulate.py``   the simulator behind ``frontdesk flow simulate`` and the API

The call engine's loop::

    flow = versions.load_flow(session, tenant_id).document        # at config (re)load
    directory = load_directory(session, tenant_id)                # at config (re)load
    ctx = build_context(caller=..., directory=directory, dialled_extension=None or "201",
                        facts=facts_from_lookup(caller_lookup(session, tenant_id, caller)))
    step = start_call(flow, ctx, now)
    while not step.done:
        outcome = perform(step.action)            # ring / play / menu / queue
        step = advance(flow, step.state, outcome, ctx, now)
    perform(step.action)                          # voicemail / transfer / hang up / connected
    cdr.path, cdr.extra = cdr_record(step.state).values()

This package must never perform an action itself, and evaluation must never touch the
database, the network or the clock.
"""
