package events

// Topic returns the default topic that carries events of type t
// (TopicCRM or TopicCampaign), or "" for a type outside contract v1.
func (t Type) Topic() string {
	switch t {
	case TypeContactUpserted, TypeLeadStageChanged, TypeOpportunityClosed, TypeOrderPlaced,
		TypeOrderRefunded, TypeSubscriptionStarted, TypeSubscriptionCancel:
		return TopicCRM
	case TypeCampaignDailyStats, TypeEmailSent, TypeEmailOpened, TypeEmailClicked,
		TypeWebVisit, TypeAppSession, TypeFormSubmitted, TypeMartechCost:
		return TopicCampaign
	}
	return ""
}

// Key returns the Kafka message key for an event with this identity: the
// best customer key a producer has, crm_contact_id, else anonymous_id, else
// the raw email (producers cannot compute the hash; the key never reaches
// storage). Keying by customer keeps one customer's events in order on one
// partition.
func (id Identity) Key() string {
	switch {
	case id.CRMContactID != "":
		return id.CRMContactID
	case id.AnonymousID != "":
		return id.AnonymousID
	}
	return id.Email
}
