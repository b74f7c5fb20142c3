-- Attribution (KPI catalog settings.attribution): the customer 360 keeps the
-- campaign touch credited with the customer becoming a lead and with their
-- first order, and the class (paid, owned, earned) of its channel.
ALTER TABLE customers ADD COLUMN acquisition_class String AFTER acquisition_campaign;
ALTER TABLE customers ADD COLUMN lead_channel String AFTER acquisition_class;
ALTER TABLE customers ADD COLUMN lead_campaign String AFTER lead_channel;
ALTER TABLE customers ADD COLUMN lead_class String AFTER lead_campaign;

-- resolved_events keeps every raw column of the events source.
ALTER TABLE resolved_events ADD COLUMN stat_date Date AFTER clicks;
ALTER TABLE resolve_staging ADD COLUMN stat_date Date AFTER clicks;

-- Reports (campaign.daily_stats, martech.cost) identify no person, and a
-- corrected re-send replaces them: resolved_events, the events of persons,
-- no longer holds them (KPIs read their latest version from events).
ALTER TABLE resolved_events DELETE WHERE type IN ('campaign.daily_stats', 'martech.cost');
